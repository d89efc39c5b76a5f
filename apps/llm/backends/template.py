"""The `template` backend: a polite reply built around the best FAQ answer, with no model weights.

It never invents anything: when retrieval is confident it quotes the FAQ answer and names the entry; when not,
it says it could not find the answer and offers a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from apps.llm.texts import get_texts
from apps.llm.types import ReplyRequest

# Stream in short runs that end at natural break points, the way a model's tokens arrive.
_CHUNK = re.compile(r"[^、。！？\n]{1,16}[、。！？\n]?|[、。！？\n]")


def template_reply_text(request: ReplyRequest) -> str:
    texts = get_texts()
    if not request.confident or not request.faq:
        return texts.NOT_FOUND
    best = request.faq[0]
    parts = []
    opener = texts.ANSWER_INTRO.format(question=best.question.rstrip("？?。."))
    parts.append((texts.ACKNOWLEDGEMENT if request.is_first_reply else "") + opener)
    parts.append(best.answer.strip())
    parts.append(texts.CLOSING)
    return "\n\n".join(parts)


def fallback_reply_text(request: ReplyRequest) -> str:
    """What the customer gets when a generated reply fails its checks or the backend fails."""
    texts = get_texts()
    if not request.confident or not request.faq:
        return texts.NOT_FOUND
    best = request.faq[0]
    return "\n\n".join(
        [
            texts.FALLBACK_APOLOGY,
            best.answer.strip(),
            texts.OFFER_PERSON,
        ]
    )


def split_for_streaming(text: str) -> list[str]:
    return _CHUNK.findall(text)


class TemplateBackend:
    name = "template"
    model_id = "template-v1"

    def stream(self, request: ReplyRequest) -> Iterator[str]:
        yield from split_for_streaming(template_reply_text(request))

"""The four export formats, one JSON object per example.

Every format starts from the same rendering: the example's snapshot (turns, FAQ context, confidence) and its
attribute ratings go through `apps.llm.prompt.render_prompt`, the renderer the bot serves with, with the
configured tokenizer and prompt budget. So the prompt of a training example is, character for character, the
prompt the model would be sent for that conversation today, including sanitising and fitting; only the
attribute values differ (the example's ratings of the chosen text instead of the deployment defaults).

- karakuri-sft: {"text": prompt + completion}, the completion as the format writes an assistant turn
  (" {chosen} </s>" in the built-in 70B format; the tokenizer's own template when it has one).
- steerlm: NeMo-Aligner's SteerLM layout; the chosen reply carries the attribute label, earlier replies none.
- messages: {"messages": [{"role", "content"}, ...]}, system first, the chosen reply last.
- dpo: {"prompt", "chosen", "rejected"}: the rendered prompt and the two replies as plain text (the trainer
  adds the end-of-sequence token). Examples without a different rejected reply are skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apps.llm.attributes import ATTRIBUTE_NAMES
from apps.llm.prompt import (
    BUILTIN_EOS,
    BUILTIN_FORMAT,
    CHAT_TEMPLATE_FORMAT,
    RenderedPrompt,
    _tokenizer_specials,  # the same special tokens render_prompt protects
    render_prompt,
    sanitize_text,
)
from apps.llm.types import ChatTurn, FaqContext, ReplyRequest

FORMATS = ("karakuri-sft", "steerlm", "messages", "dpo")


@dataclass(frozen=True)
class ExampleText:
    """An example as it will be written: masked text, full attributes."""

    turns: Sequence[Mapping[str, str]]
    faq: Sequence[Mapping[str, Any]]
    confident: bool
    is_first_reply: bool
    attributes: Mapping[str, int]
    chosen: str
    rejected: str


class Renderer:
    """Renders examples in one format with the bot's prompt renderer. `tokenizer` None: the built-in format."""

    def __init__(self, fmt: str, *, tokenizer: Any = None, max_prompt_tokens: int | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.format = fmt
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens
        self._specials = _tokenizer_specials(tokenizer)
        self._write: Callable[[ExampleText, RenderedPrompt], dict | None] = {
            "karakuri-sft": self._karakuri_sft,
            "steerlm": self._steerlm,
            "messages": self._messages,
            "dpo": self._dpo,
        }[fmt]

    def prompt_format(self) -> str:
        """The prompt format written: the built-in 70B Chat format, or the tokenizer's chat template."""
        uses_template = self.tokenizer is not None and getattr(self.tokenizer, "chat_template", None)
        return CHAT_TEMPLATE_FORMAT if uses_template else BUILTIN_FORMAT

    def prompt(self, example: ExampleText) -> RenderedPrompt:
        request = ReplyRequest(
            turns=tuple(ChatTurn(role=t["role"], content=t["content"]) for t in example.turns),  # type: ignore[arg-type]
            faq=tuple(
                FaqContext(faq_id=f["faq_id"], question=f["question"], answer=f["answer"], score=f["score"])
                for f in example.faq
            ),
            confident=example.confident,
            is_first_reply=example.is_first_reply,
            attributes=example.attributes,
        )
        return render_prompt(request, tokenizer=self.tokenizer, max_prompt_tokens=self.max_prompt_tokens)

    def render(self, example: ExampleText) -> dict | None:
        """The JSON object for one example, or None when the format has no use for it (dpo without a pair).

        Raises what render_prompt raises (PromptTooLong, UnsafePrompt, ValueError) for an example that cannot
        be rendered.
        """
        return self._write(example, self.prompt(example))

    def _reply(self, text: str) -> str:
        # The operator's text becomes model output: it must not carry format markers either.
        return sanitize_text(text.strip(), special_tokens=self._specials)

    def completion(self, prompt: RenderedPrompt, reply: str) -> str:
        """The text that follows `prompt` when the model answers `reply`, as the format writes it."""
        if prompt.format == BUILTIN_FORMAT or self.tokenizer is None:
            return f" {reply} {prompt.stop[0] if prompt.stop else BUILTIN_EOS}"
        messages = [_plain(m) for m in prompt.messages] + [{"role": "assistant", "content": reply}]
        try:
            full = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        except Exception:  # a template without a system role; the prompt already folded it
            full = ""
        if full.startswith(prompt.text):
            return full[len(prompt.text) :]
        return f"{reply}{getattr(self.tokenizer, 'eos_token', None) or BUILTIN_EOS}"

    def _karakuri_sft(self, example: ExampleText, prompt: RenderedPrompt) -> dict:
        return {"text": prompt.text + self.completion(prompt, self._reply(example.chosen))}

    def _steerlm(self, example: ExampleText, prompt: RenderedPrompt) -> dict:
        system, *turns = prompt.messages
        conversations = [
            {"from": "User" if m["role"] == "user" else "Assistant", "value": m["content"], "label": None}
            for m in turns
        ]
        conversations.append(
            {"from": "Assistant", "value": self._reply(example.chosen), "label": steerlm_label(prompt.attributes)}
        )
        return {"system": system["content"], "conversations": conversations, "mask": "User", "type": "VALUE_TO_TEXT"}

    def _messages(self, example: ExampleText, prompt: RenderedPrompt) -> dict:
        messages = [_plain(m) for m in prompt.messages]
        messages.append({"role": "assistant", "content": self._reply(example.chosen)})
        return {"messages": messages}

    def _dpo(self, example: ExampleText, prompt: RenderedPrompt) -> dict | None:
        chosen, rejected = self._reply(example.chosen), self._reply(example.rejected)
        if not rejected or rejected == chosen:
            return None
        return {"prompt": prompt.text, "chosen": chosen, "rejected": rejected}


def steerlm_label(attributes: Mapping[str, int]) -> str:
    """NeMo-Aligner's attribute label: "helpfulness:4,correctness:4,...,creativity:0"."""
    return ",".join(f"{name}:{attributes[name]}" for name in ATTRIBUTE_NAMES)


def _plain(message: Mapping[str, Any]) -> dict[str, str]:
    # render_prompt's messages carry the attribute values on user turns, for chat templates; drop them here.
    return {"role": message["role"], "content": message["content"]}

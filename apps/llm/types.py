"""What the reply pipeline hands a backend. Plain data: apps/llm never touches the database."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class FaqContext:
    """One retrieved FAQ entry offered to the model as grounding, best first."""

    faq_id: str
    question: str
    answer: str
    score: float


@dataclass(frozen=True)
class ChatTurn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class ReplyRequest:
    """Everything a backend needs for one reply.

    `turns` is the conversation so far, oldest first; the last turn is the customer's message being answered.
    `confident` is retrieval's verdict: when False the reply must not answer from `faq` but say it could not
    find the answer and offer a person.
    """

    turns: tuple[ChatTurn, ...]
    faq: tuple[FaqContext, ...]
    confident: bool
    is_first_reply: bool = True
    attributes: Mapping[str, int] | None = None
    extra: Mapping[str, object] = field(default_factory=dict)

    @property
    def question(self) -> str:
        return self.turns[-1].content if self.turns else ""


class ReplyBackend(Protocol):
    """A source of reply tokens. `stream` yields text pieces whose concatenation is the reply."""

    name: str
    model_id: str

    def stream(self, request: ReplyRequest) -> Iterator[str]: ...


def reply_request_to_dict(request: ReplyRequest) -> dict[str, object]:
    """JSON-ready form (for a Celery task argument, a langchain message, a test fixture)."""
    return {
        "turns": [{"role": t.role, "content": t.content} for t in request.turns],
        "faq": [
            {"faq_id": f.faq_id, "question": f.question, "answer": f.answer, "score": f.score} for f in request.faq
        ],
        "confident": request.confident,
        "is_first_reply": request.is_first_reply,
        "attributes": dict(request.attributes) if request.attributes else None,
        "extra": dict(request.extra),
    }


def reply_request_from_dict(data: Mapping[str, Any]) -> ReplyRequest:
    return ReplyRequest(
        turns=tuple(ChatTurn(role=t["role"], content=t["content"]) for t in data.get("turns") or ()),
        faq=tuple(FaqContext(**f) for f in data.get("faq") or ()),
        confident=bool(data.get("confident", False)),
        is_first_reply=bool(data.get("is_first_reply", True)),
        attributes=data.get("attributes") or None,
        extra=dict(data.get("extra") or {}),
    )

"""The reply pipeline: one customer message in, one saved bot reply out.

retrieval (apps.faq) → request (apps.llm types) → backend token stream, published as it comes → checks →
saved with provenance. Runs in a worker thread of the web process or in a Celery worker; never on the
event loop.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings

from apps.chat import events
from apps.chat.models import Conversation, Message
from apps.chat.services import bot_reply_save
from apps.faq.search import SearchResult, faq_search
from apps.llm.backends import get_backend
from apps.llm.backends.template import fallback_reply_text
from apps.llm.types import ChatTurn, FaqContext, ReplyRequest

logger = logging.getLogger(__name__)

# How often (in tokens) a long generation looks whether a person took over and it should stop.
_STATUS_CHECK_EVERY = 16


def reply_request_build(*, customer_message: Message, search: SearchResult) -> ReplyRequest:
    """The backend's view of the conversation: alternating turns ending with the message being answered."""
    history = list(
        Message.objects.filter(
            conversation_id=customer_message.conversation_id,
            seq__lt=customer_message.seq,
            role__in=[Message.Role.CUSTOMER, Message.Role.BOT, Message.Role.OPERATOR],
        )
        .order_by("-seq")
        .values_list("role", "text")[: settings.REPLY_HISTORY_MESSAGES]
    )[::-1]
    history.append((Message.Role.CUSTOMER, customer_message.text))
    turns: list[ChatTurn] = []
    for role, text in history:
        turn_role = "user" if role == Message.Role.CUSTOMER else "assistant"
        if turns and turns[-1].role == turn_role:
            # The chat format needs strict alternation; two messages in a row read as one turn.
            turns[-1] = ChatTurn(role=turn_role, content=turns[-1].content + "\n" + text)
        elif turns or turn_role == "user":
            turns.append(ChatTurn(role=turn_role, content=text))
    is_first_reply = not Message.objects.filter(
        conversation_id=customer_message.conversation_id, role=Message.Role.BOT
    ).exists()
    return ReplyRequest(
        turns=tuple(turns),
        faq=tuple(
            FaqContext(faq_id=h.external_id, question=h.question, answer=h.answer, score=h.score) for h in search.hits
        ),
        confident=search.confident,
        is_first_reply=is_first_reply,
    )


def _bot_still_answers(conversation_id: Any) -> bool:
    return Conversation.objects.filter(id=conversation_id, status=Conversation.Status.BOT).exists()


def reply_generate(*, customer_message_id: int) -> Message | None:
    """Answer one customer message. Returns the saved reply, or None when the bot must stay silent."""
    started = time.perf_counter()
    customer_message = Message.objects.select_related("conversation").get(id=customer_message_id)
    conversation_id = customer_message.conversation_id
    if not customer_message.conversation.bot_answers:
        return None
    if Message.objects.filter(in_reply_to_id=customer_message_id, role=Message.Role.BOT).exists():
        return None  # a retried task: the reply is already there

    search = faq_search(customer_message.text, k=settings.REPLY_FAQ_CONTEXT)
    retrieved = time.perf_counter()
    request = reply_request_build(customer_message=customer_message, search=search)
    backend = get_backend()
    events.publish(conversation_id, events.reply_started(customer_message.seq))

    pieces: list[str] = []
    first_token_at: float | None = None
    failure: dict[str, str] | None = None
    stopped = False
    stream = backend.stream(request)
    try:
        for index, piece in enumerate(stream):
            if first_token_at is None:
                first_token_at = time.perf_counter()
            pieces.append(piece)
            events.publish(conversation_id, events.reply_token(customer_message.seq, index, piece))
            if index % _STATUS_CHECK_EVERY == _STATUS_CHECK_EVERY - 1 and not _bot_still_answers(conversation_id):
                stopped = True
                break
    except Exception as exc:  # any backend fault: the customer still gets a safe reply
        logger.exception("backend %s failed", backend.name)
        failure = {"check": "backend", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()  # stops generation early when we broke out of the loop
    generated = time.perf_counter()

    if stopped:
        events.publish(conversation_id, events.reply_stopped(customer_message.seq))
        return None

    text = "".join(pieces).strip()
    if failure is None and not text:
        failure = {"check": "backend", "reason": "empty output"}
    checks: list[dict[str, str]] = []
    if failure is None:
        checks = _reply_check_failures(text, request)
    fell_back = failure is not None or bool(checks)
    if fell_back:
        text = fallback_reply_text(request)

    cited = [request.faq[0].faq_id] if request.confident and request.faq else []
    provenance = {
        "faq": [
            {
                "id": h.external_id,
                "question": h.question,
                "score": round(h.score, 4),
                "sparse": None if h.sparse_score is None else round(h.sparse_score, 4),
                "dense": None if h.dense_score is None else round(h.dense_score, 4),
            }
            for h in search.hits
        ],
        "cited_faq_ids": cited,
        "confident": search.confident,
        "kb_revision": search.kb_revision,
        "backend": backend.name,
        "model_id": backend.model_id,
        "attributes": dict(request.attributes) if request.attributes else None,
        "checks": {"passed": not fell_back, "failures": ([failure] if failure else []) + checks},
        "fallback": fell_back,
        "timings_ms": {
            "retrieval": round((retrieved - started) * 1000, 2),
            "first_token": None if first_token_at is None else round((first_token_at - started) * 1000, 2),
            "generation": round((generated - retrieved) * 1000, 2),
            "total": round((time.perf_counter() - started) * 1000, 2),
        },
    }
    reply = bot_reply_save(customer_message_id=customer_message_id, text=text, provenance=provenance)
    if reply is None:
        events.publish(conversation_id, events.reply_stopped(customer_message.seq))
    return reply


def _reply_check_failures(text: str, request: ReplyRequest) -> list[dict[str, str]]:
    try:
        from apps.llm.checks import reply_check
    except ImportError:  # the checks module arrives with the KARAKURI backends
        return []
    result = reply_check(text, request)
    return [] if result.ok else list(result.failures)

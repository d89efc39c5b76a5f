"""The reply pipeline: one customer message in, one saved bot reply out.

retrieval (apps.faq) → request (apps.llm types) → backend token stream, published as it comes → checks →
saved with provenance. Runs in a worker thread of the web process or in a Celery worker; never on the
event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from apps.chat import events, presence
from apps.chat.models import Conversation, Message
from apps.chat.services import bot_reply_mark_abandoned, bot_reply_save
from apps.faq.search import SearchResult, faq_search
from apps.llm.attributes import resolve_attributes
from apps.llm.backends import get_backend
from apps.llm.backends.template import (
    TemplateBackend,  # noqa: F401 - re-exported for tests
    fallback_reply_text,
)
from apps.llm.checks import reply_check
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
    return _reply_request(turns=tuple(turns), search=search, is_first_reply=is_first_reply)


def reply_request_preview(*, question: str) -> ReplyRequest:
    """The request a first message `question` would produce, without storing anything (ask --show-prompt)."""
    search = faq_search(question, k=settings.REPLY_FAQ_CONTEXT)
    return _reply_request(turns=(ChatTurn(role="user", content=question),), search=search, is_first_reply=True)


def _reply_request(*, turns: tuple[ChatTurn, ...], search: SearchResult, is_first_reply: bool) -> ReplyRequest:
    return ReplyRequest(
        turns=turns,
        faq=tuple(
            FaqContext(faq_id=h.external_id, question=h.question, answer=h.answer, score=h.score) for h in search.hits
        ),
        confident=search.confident,
        is_first_reply=is_first_reply,
    )


def _bot_still_answers(conversation_id: Any) -> bool:
    return Conversation.objects.filter(id=conversation_id, status=Conversation.Status.BOT).exists()


def reply_generate(*, customer_message_id: int, stop_when: Callable[[], bool] | None = None) -> Message | None:
    """Answer one customer message. Returns the saved reply, or None when the bot must stay silent.

    `stop_when`, asked at every piece, says the process is going away (the server is stopping): generation stops
    and the message is left for `reply_resume` to answer when the customer reconnects."""
    customer_message = Message.objects.select_related("conversation").get(id=customer_message_id)
    conversation_id = customer_message.conversation_id
    if not customer_message.conversation.bot_answers:
        return None
    if Message.objects.filter(in_reply_to_id=customer_message_id, role=Message.Role.BOT).exists():
        return None  # a retried task: the reply is already there

    stream = events.ReplyEventStream(conversation_id, customer_message.seq)
    watches_sockets = customer_message.conversation.channel == "web"
    absent_checks = 0
    process_stopping = False

    def on_token(index: int, piece: str) -> bool:
        nonlocal absent_checks, process_stopping
        stream.token(piece)
        if stop_when is not None and stop_when():
            process_stopping = True
            return False
        if index % _STATUS_CHECK_EVERY != _STATUS_CHECK_EVERY - 1:
            return True
        if not _bot_still_answers(conversation_id):
            return False
        # A web customer with no socket open on two checks running has left (one check would stop the reply
        # of a customer who is only reloading the page): stop spending model time on them.
        absent_checks = absent_checks + 1 if watches_sockets and not presence.customer_sockets(conversation_id) else 0
        return absent_checks < 2

    try:
        # The last pieces are out before the checks start: they hold the GIL for milliseconds, and the event loop
        # would wait for it.
        composed = _reply_compose(customer_message, on_start=stream.started, on_token=on_token, on_end=stream.flush)
    finally:
        stream.flush()  # every token is out before the saved reply (or reply.stopped) is published
    if composed is None:
        if absent_checks >= 2 or process_stopping:
            bot_reply_mark_abandoned(customer_message_id=customer_message_id)
        events.publish(conversation_id, events.reply_stopped(customer_message.seq))
        return None
    text, provenance = composed
    reply = bot_reply_save(customer_message_id=customer_message_id, text=text, provenance=provenance)
    if reply is None:
        events.publish(conversation_id, events.reply_stopped(customer_message.seq))
    return reply


def reply_draft(*, customer_message_id: int) -> tuple[str, dict[str, Any]]:
    """What the bot would answer to a customer message, with the same provenance as a saved reply, saving and
    publishing nothing: the operator console's copilot draft while a person holds the conversation."""
    customer_message = Message.objects.select_related("conversation").get(id=customer_message_id)
    composed = _reply_compose(customer_message)
    assert composed is not None  # nothing can stop a draft
    return composed


def _reply_compose(
    customer_message: Message,
    *,
    on_start: Callable[[], None] | None = None,
    on_token: Callable[[int, str], bool] | None = None,
    on_end: Callable[[], None] | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """Retrieval, generation, checks: the reply text and its provenance. `on_token` returning False stops
    generation, and then None is returned. `on_end` is called when the backend's stream is over, before the
    checks."""
    started = time.perf_counter()
    search = faq_search(customer_message.text, k=settings.REPLY_FAQ_CONTEXT)
    retrieved = time.perf_counter()
    request = reply_request_build(customer_message=customer_message, search=search)
    if on_start is not None:
        on_start()

    pieces: list[str] = []
    first_token_at: float | None = None
    last_token_at: float | None = None
    failure: dict[str, str] | None = None
    stopped = False
    backend_name, model_id = settings.REPLY_BACKEND, "unavailable"
    stream = None
    try:
        # Inside the try: a backend that cannot start (no weights, no Neuron SDK) still gets the customer the
        # FAQ-based reply, and the reason is recorded with it.
        backend = get_backend()
        backend_name, model_id = backend.name, backend.model_id
        stream = backend.stream(request)
        for index, piece in enumerate(stream):
            last_token_at = time.perf_counter()
            if first_token_at is None:
                first_token_at = last_token_at
            pieces.append(piece)
            if on_token is not None and not on_token(index, piece):
                stopped = True
                break
    except Exception as exc:  # any backend fault: the customer still gets a safe reply
        logger.exception("backend %s failed", backend_name)
        kind = getattr(exc, "kind", "error")
        failure = {"check": "backend", "kind": kind, "reason": f"{type(exc).__name__}: {exc}"[:500]}
    finally:
        close = getattr(stream, "close", None) if stream is not None else None
        if close is not None:
            close()  # stops generation early when we broke out of the loop
        if on_end is not None:
            on_end()
    generated = time.perf_counter()

    if stopped:
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
        "backend": backend_name,
        "model_id": model_id,
        "attributes": resolve_attributes(request.attributes),
        "checks": {"passed": not fell_back, "failures": ([failure] if failure else []) + checks},
        "fallback": fell_back,
        "generated_pieces": len(pieces),  # what the backend streamed, before any fallback replaced it
        "timings_ms": {
            "retrieval": round((retrieved - started) * 1000, 2),
            "first_token": None if first_token_at is None else round((first_token_at - started) * 1000, 2),
            "last_token": None if last_token_at is None else round((last_token_at - started) * 1000, 2),
            "generation": round((generated - retrieved) * 1000, 2),
            "total": round((time.perf_counter() - started) * 1000, 2),
        },
    }
    return text, provenance


def _reply_check_failures(text: str, request: ReplyRequest) -> list[dict[str, str]]:
    result = reply_check(text, request)
    return [] if result.ok else list(result.failures)

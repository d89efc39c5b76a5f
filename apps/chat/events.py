"""Server → client events of the customer chat (documented for client authors in docs/websocket.md), and
their fan-out through the channel layer to every socket of a conversation.

The operators' group gets its own events (docs/console.md): every message, status change and thumb of every
conversation, with the provenance customers never see. They are sent after the same commits as the customer
events; the customer events are unchanged by them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from typing import Any

from asgiref.sync import SyncToAsync
from channels.layers import get_channel_layer

from apps.chat.models import Conversation, Message

logger = logging.getLogger(__name__)

CLIENT_EVENT_TYPES = ("hello", "message.send", "feedback.set", "operator.request", "ping")

# How long a flush waits for the channel layer before going on without it (an event is then late or lost, never
# the data: a reconnecting client reads messages back from the database).
PUBLISH_TIMEOUT_S = 10.0
# Pieces of a reply generated within this long of the last `reply.token` event wait and go out together.
TOKEN_INTERVAL_S = 0.025


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    return f"chat.conversation.{uuid.UUID(str(conversation_id)).hex}"


# Every operator console socket is in this one group; clients filter by conversation_id.
OPERATORS_GROUP = "console.operators"


def publish(conversation_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    """Send an event to every socket of the conversation (in this process or, with Redis, any process).

    Returns at once: the event is queued behind every event this process published before it (see `_Outbox`).
    """
    _outbox().put(conversation_group(conversation_id), {"type": "chat.event", "event": event})


class _Outbox:
    """Events waiting to be sent from one event loop, sent in the order they were published by one task.

    Publishing used to wait for the channel layer (async_to_sync): every event cost the publishing thread a
    round trip to the event loop (0.3-0.8 ms, more on busy cores). For a reply that came straight off the
    tokens per second, and the customer's own echo delayed the start of the reply. Queueing keeps one order
    for everything a process publishes (the customer's message, then the reply's start, tokens and saved
    message) without making anyone wait; a thread that must know an event is out waits on its future.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: deque[tuple[str, dict[str, Any], concurrent.futures.Future]] = deque()
        self._lock = threading.Lock()
        self._sending: concurrent.futures.Future | None = None

    def put(self, group: str, message: dict[str, Any]) -> concurrent.futures.Future:
        sent: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._queue.append((group, message, sent))
            if self._sending is None:
                sender = self._send_queued()
                try:
                    self._sending = asyncio.run_coroutine_threadsafe(sender, self.loop)
                except RuntimeError as exc:  # the loop was closed (the server is shutting down)
                    sender.close()
                    self._queue.pop()
                    logger.warning("event to %s not sent: %s", group, exc)
                    sent.set_exception(exc)
        return sent

    async def _send_queued(self) -> None:
        try:
            layer = get_channel_layer()
            while True:
                with self._lock:
                    if not self._queue:
                        self._sending = None
                        return
                    group, message, sent = self._queue.popleft()
                try:
                    await layer.group_send(group, message)
                except Exception as exc:
                    # A lost event costs a client only a live update: what it announced is in the database, and
                    # a reconnecting client reads it back.
                    logger.exception("sending an event to %s failed", group)
                    sent.set_exception(exc)
                else:
                    sent.set_result(None)
        except BaseException as exc:  # cancelled as the loop shuts down, or no channel layer at all
            with self._lock:
                self._sending = None
                dropped, self._queue = list(self._queue), deque()
            for _, _, sent in dropped:
                sent.set_exception(exc if isinstance(exc, Exception) else RuntimeError("event loop stopped"))
            raise

    def drain(self, timeout: float) -> None:
        with self._lock:
            sending = self._sending
        if sending is not None:
            concurrent.futures.wait([sending], timeout=timeout)


# Where events are sent from. The in-memory channel layer only delivers within the loop its sockets live on:
# a thread that sync_to_async started sends on the loop that started it (as async_to_sync did), any other
# thread of a serving process on the ASGI server's loop. Anywhere else (a Celery worker, a management command)
# one long-lived loop in a daemon thread sends, so its Redis connections are reused, where async_to_sync made
# a new loop, and so new connections, for every event.
_outboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outbox] = weakref.WeakKeyDictionary()
_background: tuple[int, asyncio.AbstractEventLoop] | None = None
_outboxes_lock = threading.Lock()


def _outbox() -> _Outbox:
    loop = _publishing_loop()
    with _outboxes_lock:
        outbox = _outboxes.get(loop)
        if outbox is None:
            outbox = _outboxes[loop] = _Outbox(loop)
        return outbox


def _publishing_loop() -> asyncio.AbstractEventLoop:
    global _background
    from apps.chat.dispatch import server_loop

    try:
        return asyncio.get_running_loop()  # async code publishing: queueing never blocks its loop
    except RuntimeError:
        pass
    caller = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if (
        caller is not None
        and getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid()
        and caller.is_running()
    ):
        return caller
    loop = server_loop()
    if loop is not None:
        return loop
    with _outboxes_lock:
        # Keyed by process id: a forked Celery child must not use its parent's (non-running) thread.
        if _background is None or _background[0] != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="events-publisher", daemon=True).start()
            _background = (os.getpid(), loop)
            atexit.register(_background_drain)
        return _background[1]


def _background_drain() -> None:
    # A management command (ask, chat) may exit right after its reply: let the operators' consoles hear of it.
    if _background is not None and _background[0] == os.getpid():
        outbox = _outboxes.get(_background[1])
        if outbox is not None:
            outbox.drain(timeout=PUBLISH_TIMEOUT_S)


class ReplyEventStream:
    """A reply's `reply.started` and `reply.token` events, in order, with `flush()` to wait until all are out.

    The first piece is sent at once and waited for: the customer's first sight of the answer is the latency that
    matters. After it, pieces that come faster than one per TOKEN_INTERVAL_S travel together in one event (a
    timer on the loop sends what waits when the model pauses). Every event costs the process's event loop and
    each socket some work under the GIL that generation then lacks: one event per piece took 6 % off a fast
    model's pieces per second, while 40 updates a second still read as a continuous stream. Events are numbered
    as they are sent, so `index` stays 0, 1, 2… whatever they carry.

    The pipeline flushes before the saved reply is published, so a client that stops listening at the final
    `message.created` has had every piece.
    """

    def __init__(self, conversation_id: uuid.UUID | str, in_reply_to_seq: int) -> None:
        self._group = conversation_group(conversation_id)
        self._in_reply_to_seq = in_reply_to_seq
        self._outbox = _outbox()
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._next_index = 0
        self._last_emit = 0.0
        self._timer_armed = False
        self._last: concurrent.futures.Future | None = None

    def started(self) -> None:
        with self._lock:
            self._put(reply_started(self._in_reply_to_seq))

    def token(self, text: str) -> None:
        with self._lock:
            self._pending.append(text)
            first = self._next_index == 0
            wait = self._last_emit + TOKEN_INTERVAL_S - time.monotonic()
            if first or wait <= 0:
                self._emit()
            elif not self._timer_armed:
                self._timer_armed = True
                loop = self._outbox.loop
                try:
                    loop.call_soon_threadsafe(loop.call_later, wait, self._emit_late)
                except RuntimeError:  # the loop is closing: send now rather than never
                    self._timer_armed = False
                    self._emit()
        if first:
            self.flush()

    def _emit_late(self) -> None:
        with self._lock:
            self._timer_armed = False
            if self._pending:
                self._emit()

    def _emit(self) -> None:
        # Called with the lock held, so events enter the outbox in index order.
        event = reply_token(self._in_reply_to_seq, self._next_index, "".join(self._pending))
        self._pending.clear()
        self._next_index += 1
        self._last_emit = time.monotonic()
        self._put(event)

    def _put(self, event: dict[str, Any]) -> None:
        self._last = self._outbox.put(self._group, {"type": "chat.event", "event": event})

    def send_pending(self) -> None:
        """Send the pieces held back now (the stream is over), without waiting for them to be out."""
        with self._lock:
            if self._pending:
                self._emit()

    def flush(self) -> None:
        self.send_pending()
        with self._lock:
            last = self._last
        # A stopped loop (the server is shutting down) sends nothing more: waiting for it would only hold the
        # process up.
        if last is not None and self._outbox.loop.is_running():
            done, _ = concurrent.futures.wait([last], timeout=PUBLISH_TIMEOUT_S)
            if not done:
                logger.warning("reply events to %s were not all sent within %s s", self._group, PUBLISH_TIMEOUT_S)


def message_payload(message: Message) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "seq": message.seq,
        "role": message.role,
        "text": message.text,
        "created_at": message.created_at.isoformat(),
        "client_msg_id": message.client_msg_id,
        "in_reply_to_seq": message.provenance.get("in_reply_to_seq"),
    }
    if message.role == Message.Role.BOT:
        payload["feedback"] = message.feedback
        cited = set(message.provenance.get("cited_faq_ids", []))
        payload["faq"] = [
            {"id": f["id"], "question": f["question"], "score": f["score"]}
            for f in message.provenance.get("faq", [])
            if f["id"] in cited
        ]
    return payload


def message_created(message: Message) -> dict[str, Any]:
    return {"type": "message.created", "message": message_payload(message)}


def feedback_updated(message: Message) -> dict[str, Any]:
    return {"type": "feedback.updated", "seq": message.seq, "value": message.feedback}


def conversation_status(status: str) -> dict[str, Any]:
    return {"type": "conversation.status", "status": status}


def reply_started(in_reply_to_seq: int) -> dict[str, Any]:
    return {"type": "reply.started", "in_reply_to_seq": in_reply_to_seq}


def reply_token(in_reply_to_seq: int, index: int, text: str) -> dict[str, Any]:
    return {"type": "reply.token", "in_reply_to_seq": in_reply_to_seq, "index": index, "text": text}


def reply_stopped(in_reply_to_seq: int) -> dict[str, Any]:
    return {"type": "reply.stopped", "in_reply_to_seq": in_reply_to_seq}


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"type": "error", "code": code, "message": message, **extra}


# The operators' group.


def publish_operators(event: dict[str, Any]) -> None:
    """Send an event to every operator console socket (in this process or, with Redis, any process)."""
    _outbox().put(OPERATORS_GROUP, {"type": "console.event", "event": event})


def conversation_state(conversation: Conversation) -> dict[str, Any]:
    """What a queue row shows of a conversation, from its row alone."""
    operator = conversation.assigned_operator
    return {
        "id": str(conversation.id),
        "status": conversation.status,
        "channel": conversation.channel,
        "last_seq": conversation.last_seq,
        "created_at": conversation.created_at.isoformat(),
        "updated_at": conversation.updated_at.isoformat(),
        "waiting_since": conversation.waiting_since.isoformat() if conversation.waiting_since else None,
        "claimed_at": conversation.claimed_at.isoformat() if conversation.claimed_at else None,
        "assigned_operator": (
            {"id": operator.pk, "name": operator.get_full_name() or operator.get_username()} if operator else None
        ),
    }


def operator_message_payload(message: Message) -> dict[str, Any]:
    """A message as the console shows it: the customer's view plus id and provenance."""
    return {
        **message_payload(message),
        "id": message.id,
        "feedback": message.feedback,
        "provenance": message.provenance,
    }


def _conversation_state_now(conversation_id: uuid.UUID | str) -> dict[str, Any] | None:
    conversation = Conversation.objects.select_related("assigned_operator").filter(id=conversation_id).first()
    return conversation_state(conversation) if conversation is not None else None


def publish_operators_message(message: Message) -> None:
    """Tell the operators about a new message (call after commit)."""
    publish_operators(
        {
            "type": "message.created",
            "conversation_id": str(message.conversation_id),
            "conversation": _conversation_state_now(message.conversation_id),
            "message": operator_message_payload(message),
        }
    )


def publish_operators_conversation(conversation_id: uuid.UUID | str) -> None:
    """Tell the operators a conversation's status or holder changed (call after commit)."""
    state = _conversation_state_now(conversation_id)
    if state is not None:
        publish_operators({"type": "conversation.updated", "conversation_id": state["id"], "conversation": state})


def publish_operators_feedback(message: Message) -> None:
    publish_operators(
        {
            "type": "feedback.updated",
            "conversation_id": str(message.conversation_id),
            "seq": message.seq,
            "value": message.feedback,
        }
    )

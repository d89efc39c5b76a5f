"""Writes to conversations and messages. The consumer, the HTTP API, tasks and commands all call these.

Each write ends by sending its event to the conversation's group after the commit, so a client never hears of
something that was rolled back.
"""

from __future__ import annotations

import re
import uuid
from functools import cache

import limits
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.chat import events
from apps.chat.errors import ChatError, invalid_field
from apps.chat.models import Conversation, Message
from apps.chat.texts_ja import HANDOFF_REQUESTED

# C0/C1 control characters except tab and newline; \r is normalised to \n first.
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@cache
def _rate_limiter() -> limits.strategies.RateLimiter:
    # Shared by every process through Redis when there is one, so a flood cannot spread over workers.
    if settings.REDIS_URL:
        # Under this deployment's prefix, so deployments (and test runs) sharing a Redis stay apart.
        storage = limits.storage.RedisStorage(settings.REDIS_URL, key_prefix=f"{settings.CHANNEL_LAYER_PREFIX}:limits")
    else:
        storage = limits.storage.MemoryStorage()
    return limits.strategies.MovingWindowRateLimiter(storage)


def _rate_limit_hit(setting_name: str, key: str) -> None:
    if not _rate_limiter().hit(limits.parse(getattr(settings, setting_name)), setting_name, key):
        raise ChatError("rate_limited", http_status=429)


def customer_text_clean(text: object) -> str:
    """The customer's text as it will be stored, or a ChatError saying why it cannot be."""
    if not isinstance(text, str):
        raise invalid_field("text must be a string")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if _CONTROL_CHARS.search(text):
        raise ChatError("invalid_characters")
    # Lone surrogates cannot be stored in PostgreSQL or encoded as UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ChatError("invalid_characters") from None
    text = text.strip()
    if not text:
        raise ChatError("empty_message")
    if len(text) > settings.CHAT_MAX_MESSAGE_CHARS:
        raise ChatError("message_too_long", http_status=413)
    return text


def conversation_create(*, channel: str = "web", client: str = "") -> Conversation:
    """Start a conversation. `client` (an IP address) is limited by CHAT_NEW_CONVERSATION_RATE_LIMIT."""
    if client:
        _rate_limit_hit("CHAT_NEW_CONVERSATION_RATE_LIMIT", client)
    return Conversation.objects.create(channel=channel)


def _message_append(
    *,
    conversation_id: uuid.UUID,
    role: str,
    text: str,
    client_msg_id: str | None = None,
    in_reply_to: Message | None = None,
    provenance: dict | None = None,
) -> Message:
    """Append a message with the next sequence number. Call inside a transaction."""
    # Update first, then read: the row lock (PostgreSQL) or write lock (SQLite) is taken before the read, so
    # two writers can never be handed the same number.
    Conversation.objects.filter(id=conversation_id).update(last_seq=F("last_seq") + 1, updated_at=timezone.now())
    seq = Conversation.objects.values_list("last_seq", flat=True).get(id=conversation_id)
    message = Message.objects.create(
        conversation_id=conversation_id,
        seq=seq,
        role=role,
        text=text,
        client_msg_id=client_msg_id,
        in_reply_to=in_reply_to,
        provenance={**(provenance or {}), **({"in_reply_to_seq": in_reply_to.seq} if in_reply_to else {})},
    )
    transaction.on_commit(lambda: events.publish(conversation_id, events.message_created(message)))
    transaction.on_commit(lambda: events.publish_operators_message(message))
    return message


def customer_message_receive(
    *, conversation_id: uuid.UUID, text: object, client_msg_id: object = None
) -> tuple[Message, bool]:
    """Store a customer's message and, if the bot answers this conversation, schedule its reply.

    Returns (message, created). A resend with a `client_msg_id` already stored returns the stored message with
    created=False and schedules nothing, so a client retrying after a dropped connection never duplicates.
    """
    if client_msg_id is not None and (not isinstance(client_msg_id, str) or not 0 < len(client_msg_id) <= 64):
        raise invalid_field("client_msg_id must be a string of 1 to 64 characters")
    if client_msg_id is not None:
        existing = Message.objects.filter(conversation_id=conversation_id, client_msg_id=client_msg_id).first()
        if existing is not None:
            return existing, False
    clean = customer_text_clean(text)

    _rate_limit_hit("CHAT_RATE_LIMIT", str(conversation_id))

    try:
        with transaction.atomic():
            conversation = Conversation.objects.get(id=conversation_id)
            if conversation.status == Conversation.Status.CLOSED:
                raise ChatError("conversation_closed", http_status=409)
            message = _message_append(
                conversation_id=conversation_id, role=Message.Role.CUSTOMER, text=clean, client_msg_id=client_msg_id
            )
            if conversation.bot_answers:
                from apps.chat.dispatch import reply_schedule

                reply_schedule(customer_message_id=message.id)
    except IntegrityError:
        # The same client_msg_id arrived twice at once; the other one won and holds the message.
        existing = Message.objects.filter(conversation_id=conversation_id, client_msg_id=client_msg_id).first()
        if existing is None:
            raise
        return existing, False
    return message, True


def bot_reply_save(*, customer_message_id: int, text: str, provenance: dict) -> Message | None:
    """Save the bot's reply to a customer message, unless a person has taken over meanwhile or it exists."""
    with transaction.atomic():
        customer_message = Message.objects.select_related("conversation").get(id=customer_message_id)
        conversation = Conversation.objects.select_for_update().get(id=customer_message.conversation_id)
        if not conversation.bot_answers:
            return None
        if Message.objects.filter(in_reply_to_id=customer_message_id, role=Message.Role.BOT).exists():
            return None
        return _message_append(
            conversation_id=conversation.id,
            role=Message.Role.BOT,
            text=text,
            in_reply_to=customer_message,
            provenance=provenance,
        )


def bot_reply_mark_abandoned(*, customer_message_id: int) -> None:
    """The customer left while their reply was being written and generation stopped; `reply_resume` picks it up
    when they come back."""
    message = Message.objects.get(id=customer_message_id)
    message.provenance = {**message.provenance, "reply_abandoned": True}
    message.save(update_fields=["provenance"])


def reply_resume(*, conversation_id: uuid.UUID) -> int | None:
    """When a customer reconnects: generate the reply that was abandoned when they left, if the bot still
    answers. Returns the seq of the customer message being answered, if any."""
    from apps.chat.dispatch import reply_schedule

    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(id=conversation_id)
        last = Message.objects.filter(conversation_id=conversation_id).order_by("-seq").first()
        if not conversation.bot_answers or last is None or last.role != Message.Role.CUSTOMER:
            return None
        if last.provenance.get("reply_abandoned"):
            last.provenance = {k: v for k, v in last.provenance.items() if k != "reply_abandoned"}
            last.save(update_fields=["provenance"])
            reply_schedule(customer_message_id=last.id)
        return last.seq


def message_feedback_set(*, conversation_id: uuid.UUID, seq: object, value: object) -> Message:
    """Record the customer's thumbs up (1), down (-1) or neither (None) on one of the bot's replies."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise invalid_field("seq must be a positive integer")
    if value not in (1, -1, None) or isinstance(value, bool):
        raise invalid_field("value must be 1, -1 or null")
    with transaction.atomic():
        updated = Message.objects.filter(conversation_id=conversation_id, seq=seq, role=Message.Role.BOT).update(
            feedback=value
        )
        if not updated:
            raise ChatError("not_found", http_status=404)
        message = Message.objects.get(conversation_id=conversation_id, seq=seq)
        transaction.on_commit(lambda: events.publish(conversation_id, events.feedback_updated(message)))
        transaction.on_commit(lambda: events.publish_operators_feedback(message))
    return message


def conversation_request_operator(*, conversation_id: uuid.UUID) -> Conversation:
    """The customer asked for a person: the bot goes silent and the conversation waits for an operator.

    Asking again while already waiting (or talking to a person) changes nothing.
    """
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(id=conversation_id)
        if conversation.status == Conversation.Status.CLOSED:
            raise ChatError("conversation_closed", http_status=409)
        if conversation.status != Conversation.Status.BOT:
            return conversation
        conversation.status = Conversation.Status.WAITING_FOR_OPERATOR
        conversation.waiting_since = timezone.now()
        conversation.save(update_fields=["status", "waiting_since", "updated_at"])
        _message_append(conversation_id=conversation_id, role=Message.Role.SYSTEM, text=HANDOFF_REQUESTED)
        status = conversation.status
        transaction.on_commit(lambda: events.publish(conversation_id, events.conversation_status(status)))
        transaction.on_commit(lambda: events.publish_operators_conversation(conversation_id))
    return conversation

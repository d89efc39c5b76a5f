"""Writes a person makes to a conversation: take over, reply, hand back to the bot, close.

They belong to the chat app because they change conversations and messages; the console calls them (through
apps.console.services, which adds permission checks and the audit log). Every one appends its message with
`_message_append`, so sequence numbers and after-commit events work exactly as for customer and bot messages.

Taking over is one conditional UPDATE: "set me as the holder where nobody holds it and it is not closed". On
PostgreSQL the second of two concurrent claims waits on the row lock, then re-reads the row, finds the
condition false and updates nothing; on SQLite the write lock serialises them. Either way exactly one operator
wins, without a read-then-write window.
"""

from __future__ import annotations

import uuid

from django.db import transaction
from django.utils import timezone

from apps.chat import events
from apps.chat.errors import ChatError
from apps.chat.models import Conversation, Message
from apps.chat.services import _message_append, customer_text_clean
from apps.chat.texts_ja import CONVERSATION_CLOSED, OPERATOR_HANDED_BACK, OPERATOR_JOINED


class OperatorActionRefused(Exception):
    """An operator action that cannot be done now. `code` is stable for clients (docs/console.md)."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)


def _publish_status_after_commit(conversation_id: uuid.UUID, status: str) -> None:
    transaction.on_commit(lambda: events.publish(conversation_id, events.conversation_status(status)))
    transaction.on_commit(lambda: events.publish_operators_conversation(conversation_id))


def conversation_take_over(*, conversation_id: uuid.UUID, operator) -> Conversation:
    """Claim a conversation for `operator`: the bot goes silent and the customer is told a person joined.

    Raises OperatorActionRefused("held_by_other") if another operator holds it, ("conversation_closed") if it is
    closed. Taking over a conversation one already holds changes nothing.
    """
    now = timezone.now()
    with transaction.atomic():
        claimed = (
            Conversation.objects.filter(id=conversation_id, assigned_operator__isnull=True)
            .exclude(status=Conversation.Status.CLOSED)
            .update(
                status=Conversation.Status.OPERATOR,
                assigned_operator=operator,
                claimed_at=now,
                waiting_since=None,
                updated_at=now,
            )
        )
        if not claimed:
            conversation = Conversation.objects.select_related("assigned_operator").get(id=conversation_id)
            if conversation.status == Conversation.Status.CLOSED:
                raise OperatorActionRefused("conversation_closed")
            if conversation.assigned_operator_id == operator.pk:
                return conversation
            raise OperatorActionRefused("held_by_other", conversation.assigned_operator.get_username())
        _message_append(conversation_id=conversation_id, role=Message.Role.SYSTEM, text=OPERATOR_JOINED)
        _publish_status_after_commit(conversation_id, Conversation.Status.OPERATOR)
    return Conversation.objects.select_related("assigned_operator").get(id=conversation_id)


def _held_by(conversation_id: uuid.UUID, operator) -> Conversation:
    """The conversation, locked, if `operator` holds it; else OperatorActionRefused. Call inside a transaction."""
    conversation = Conversation.objects.select_for_update().get(id=conversation_id)
    if conversation.status != Conversation.Status.OPERATOR or conversation.assigned_operator_id != operator.pk:
        raise OperatorActionRefused("not_holder")
    return conversation


def operator_message_create(
    *,
    conversation_id: uuid.UUID,
    operator,
    text: object,
    client_msg_id: str | None = None,
    provenance: dict | None = None,
) -> Message:
    """Send a person's reply to the customer (role `operator`). Only the holder of the conversation may.

    `provenance` records where the text came from (a copilot draft, a canned response); the operator's id and
    name are added. Raises ChatError for bad text, OperatorActionRefused("not_holder") otherwise.
    """
    clean = customer_text_clean(text)  # the same rules as a customer's text: no control characters, a limit
    with transaction.atomic():
        _held_by(conversation_id, operator)
        if client_msg_id is not None:
            existing = Message.objects.filter(conversation_id=conversation_id, client_msg_id=client_msg_id).first()
            if existing is not None:
                return existing
        in_reply_to = (
            Message.objects.filter(conversation_id=conversation_id, role=Message.Role.CUSTOMER).order_by("-seq").first()
        )
        return _message_append(
            conversation_id=conversation_id,
            role=Message.Role.OPERATOR,
            text=clean,
            client_msg_id=client_msg_id,
            in_reply_to=in_reply_to,
            provenance={
                **(provenance or {}),
                "operator_id": operator.pk,
                "operator": operator.get_username(),
            },
        )


def conversation_hand_back(*, conversation_id: uuid.UUID, operator) -> Conversation:
    """The holder gives the conversation back to the bot, which answers the customer's next message."""
    with transaction.atomic():
        conversation = _held_by(conversation_id, operator)
        conversation.status = Conversation.Status.BOT
        conversation.assigned_operator = None
        conversation.claimed_at = None
        conversation.save(update_fields=["status", "assigned_operator", "claimed_at", "updated_at"])
        _message_append(conversation_id=conversation_id, role=Message.Role.SYSTEM, text=OPERATOR_HANDED_BACK)
        _publish_status_after_commit(conversation_id, Conversation.Status.BOT)
    return conversation


def conversation_close(*, conversation_id: uuid.UUID, operator, force: bool = False) -> Conversation:
    """Close a conversation: the customer can send nothing more to it.

    The holder may close it; a conversation nobody holds may be closed by any operator; `force` (supervisors)
    closes one another operator holds. Closing a closed conversation changes nothing.
    """
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(id=conversation_id)
        if conversation.status == Conversation.Status.CLOSED:
            return conversation
        held_by_other = conversation.assigned_operator_id not in (None, operator.pk)
        if held_by_other and not force:
            raise OperatorActionRefused("held_by_other")
        conversation.status = Conversation.Status.CLOSED
        conversation.waiting_since = None
        # assigned_operator stays: the closed conversation still says who handled it last.
        conversation.save(update_fields=["status", "waiting_since", "updated_at"])
        _message_append(conversation_id=conversation_id, role=Message.Role.SYSTEM, text=CONVERSATION_CLOSED)
        _publish_status_after_commit(conversation_id, Conversation.Status.CLOSED)
    return conversation


__all__ = [
    "ChatError",
    "OperatorActionRefused",
    "conversation_close",
    "conversation_hand_back",
    "conversation_take_over",
    "operator_message_create",
]

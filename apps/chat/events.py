"""Server → client events of the customer chat (documented for client authors in docs/websocket.md), and
their fan-out through the channel layer to every socket of a conversation.

The operators' group gets its own events (docs/console.md): every message, status change and thumb of every
conversation, with the provenance customers never see. They are sent after the same commits as the customer
events; the customer events are unchanged by them.
"""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.chat.models import Conversation, Message

CLIENT_EVENT_TYPES = ("hello", "message.send", "feedback.set", "operator.request", "ping")


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    return f"chat.conversation.{uuid.UUID(str(conversation_id)).hex}"


# Every operator console socket is in this one group; clients filter by conversation_id.
OPERATORS_GROUP = "console.operators"


def publish(conversation_id: uuid.UUID | str, event: dict[str, Any]) -> None:
    """Send an event to every socket of the conversation (in this process or, with Redis, any process)."""
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(conversation_group(conversation_id), {"type": "chat.event", "event": event})


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
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(OPERATORS_GROUP, {"type": "console.event", "event": event})


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

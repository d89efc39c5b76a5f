"""Server → client events of the customer chat (documented for client authors in docs/websocket.md), and
their fan-out through the channel layer to every socket of a conversation."""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.chat.models import Message

CLIENT_EVENT_TYPES = ("hello", "message.send", "feedback.set", "operator.request", "ping")


def conversation_group(conversation_id: uuid.UUID | str) -> str:
    return f"chat.conversation.{uuid.UUID(str(conversation_id)).hex}"


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

"""Reads of conversations and messages."""

from __future__ import annotations

import uuid

from apps.chat.models import Conversation, Message

HISTORY_LIMIT = 500


def conversation_get(*, conversation_id: uuid.UUID) -> Conversation:
    return Conversation.objects.get(id=conversation_id)


def conversation_messages_after(*, conversation_id: uuid.UUID, after_seq: int = 0) -> list[Message]:
    """Messages with seq > after_seq, oldest first (at most the latest HISTORY_LIMIT)."""
    newest = Message.objects.filter(conversation_id=conversation_id, seq__gt=after_seq).order_by("-seq")
    return list(newest[:HISTORY_LIMIT])[::-1]

"""Conversation tokens: the customer's credential for one conversation, kept by the browser.

A token is the conversation id signed with SECRET_KEY (django.core.signing); it cannot be forged or moved to
another conversation, and it expires after CHAT_TOKEN_MAX_AGE_DAYS.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing

from apps.chat.errors import ChatError

_SALT = "karakuri_cs.chat.conversation"


def conversation_token_for(conversation_id: uuid.UUID) -> str:
    return signing.dumps({"c": str(conversation_id)}, salt=_SALT, compress=False)


def conversation_id_from_token(token: object) -> uuid.UUID:
    if not isinstance(token, str) or not token or len(token) > 300:
        raise ChatError("invalid_token", http_status=401)
    try:
        data = signing.loads(token, salt=_SALT, max_age=settings.CHAT_TOKEN_MAX_AGE_DAYS * 86400)
        return uuid.UUID(data["c"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        raise ChatError("invalid_token", http_status=401) from None

"""Errors a customer can cause. The consumer turns them into `error` events, the HTTP API into 4xx."""

from __future__ import annotations

from django.conf import settings

from apps.chat.texts_ja import ERRORS


class ChatError(Exception):
    """A refused customer action. `code` is stable for clients; `message` is Japanese, fit to show."""

    http_status = 400

    def __init__(self, code: str, *, detail: str = "", http_status: int | None = None) -> None:
        self.code = code
        self.detail = detail
        if http_status is not None:
            self.http_status = http_status
        template = ERRORS.get(code, ERRORS["invalid_field"])
        self.message = template.format(limit=settings.CHAT_MAX_MESSAGE_CHARS)
        super().__init__(f"{code}: {detail or self.message}")


def invalid_field(detail: str) -> ChatError:
    return ChatError("invalid_field", detail=detail)

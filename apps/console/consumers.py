"""The operator console socket (protocol: docs/console.md).

Authenticated by the Django session cookie (AuthMiddlewareStack in karakuri_cs.routing); the handshake is
refused (HTTP 403) for anonymous users and users without console access, and the origin is checked by
AllowedHostsOriginValidator (karakuri_cs.asgi), so another site cannot open a socket with an operator's cookie.
Thin by design: parse, call an apps.console.services function (which checks the role), answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied

from apps.chat import events
from apps.chat.errors import ChatError
from apps.chat.models import Conversation
from apps.chat.operator_services import OperatorActionRefused
from apps.console import services
from apps.console.texts_ja import ERRORS
from apps.training.services import CorrectionInvalid

logger = logging.getLogger(__name__)

# Drafts being generated in this process (customer message ids), so two requests never generate one twice.
_drafting: set[int] = set()
# Keep references to running draft tasks: the event loop holds only weak ones.
_draft_tasks: set[asyncio.Task] = set()


class ConsoleError(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail


def _conversation_id(event: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(event.get("conversation_id")))
    except ValueError:
        raise ConsoleError("invalid_field", "conversation_id must be a conversation id") from None


def _optional_str(event: dict[str, Any], name: str, max_len: int) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise ConsoleError("invalid_field", f"{name} must be a string of at most {max_len} characters")
    return value


class OperatorConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        allowed = (
            user is not None
            and user.is_authenticated
            and await database_sync_to_async(user.has_perm)("console.use_console")
        )
        if not allowed:
            await self.close(code=4403)  # before accept: the handshake is answered with HTTP 403
            return
        self.user = user
        await self.channel_layer.group_add(events.OPERATORS_GROUP, self.channel_name)
        await self.accept()
        await self.send_event({"type": "ready", "user": {"id": user.pk, "name": user.get_username()}})

    async def disconnect(self, code: int) -> None:
        if getattr(self, "user", None) is not None:
            await self.channel_layer.group_discard(events.OPERATORS_GROUP, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            event = json.loads(text_data or "")
        except (ValueError, RecursionError):  # RecursionError: a frame nested thousands deep
            return await self._error("invalid_json")
        if not isinstance(event, dict):
            return await self._error("invalid_json")
        request_id = event.get("request_id")
        if not (request_id is None or isinstance(request_id, str | int)):
            request_id = None
        event_type = event.get("type")
        handler = self._handlers.get(event_type) if isinstance(event_type, str) else None
        if handler is None:
            return await self._error("unknown_event", request_id=request_id)
        try:
            await handler(self, event)
        except ConsoleError as exc:
            await self._error(exc.code, request_id=request_id, detail=exc.detail)
        except OperatorActionRefused as exc:
            await self._error(exc.code, request_id=request_id, detail=exc.detail)
        except ChatError as exc:
            await self._error(exc.code, request_id=request_id, detail=exc.detail)
        except PermissionDenied:
            await self._error("permission_denied", request_id=request_id)
        except Conversation.DoesNotExist:
            await self._error("not_found", request_id=request_id)
        except CorrectionInvalid as exc:
            await self._error("correction_invalid", request_id=request_id, detail=str(exc), fields=exc.errors)
        else:
            if event["type"] != "ping":
                await self.send_event({"type": "ack", "request_id": request_id, "action": event["type"]})

    async def console_event(self, message: dict[str, Any]) -> None:
        """An event from the operators' group, forwarded as is."""
        await self.send_event(message["event"])

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))

    async def _error(self, code: str, *, request_id=None, detail: str = "", **extra: Any) -> None:
        await self.send_event(
            {
                "type": "error",
                "code": code,
                "message": ERRORS.get(code, ERRORS["invalid_field"]),
                "detail": detail,
                "request_id": request_id,
                **extra,
            }
        )

    # Handlers, one per client event type.

    async def _take_over(self, event: dict[str, Any]) -> None:
        await database_sync_to_async(services.console_take_over)(
            user=self.user, conversation_id=_conversation_id(event)
        )

    async def _hand_back(self, event: dict[str, Any]) -> None:
        await database_sync_to_async(services.console_hand_back)(
            user=self.user, conversation_id=_conversation_id(event)
        )

    async def _close(self, event: dict[str, Any]) -> None:
        await database_sync_to_async(services.console_close)(user=self.user, conversation_id=_conversation_id(event))

    async def _message_send(self, event: dict[str, Any]) -> None:
        draft_id = event.get("draft_id")
        if draft_id is not None and (not isinstance(draft_id, int) or isinstance(draft_id, bool)):
            raise ConsoleError("invalid_field", "draft_id must be an integer")
        no_faq = event.get("no_faq_covers")
        if no_faq is not None and not isinstance(no_faq, bool):
            raise ConsoleError("invalid_field", "no_faq_covers must be true, false or null")
        canned = event.get("canned") or []
        if not isinstance(canned, list) or not all(isinstance(c, str) for c in canned):
            raise ConsoleError("invalid_field", "canned must be a list of shortcuts")
        await database_sync_to_async(services.console_reply_send)(
            user=self.user,
            conversation_id=_conversation_id(event),
            text=event.get("text"),
            client_msg_id=_optional_str(event, "client_msg_id", 64),
            draft_id=draft_id,
            faq_external_id=_optional_str(event, "faq_external_id", 64) or "",
            no_faq_covers=no_faq,
            canned_shortcuts=canned,
        )

    async def _draft_request(self, event: dict[str, Any]) -> None:
        conversation_id = _conversation_id(event)
        draft, to_generate = await database_sync_to_async(services.copilot_draft_request)(
            user=self.user, conversation_id=conversation_id
        )
        if draft is not None:
            await self.send_event(await database_sync_to_async(services.draft_ready_event)(draft))
        elif to_generate is not None:
            await _draft_schedule(to_generate)

    async def _ping(self, event: dict[str, Any]) -> None:
        await self.send_event({"type": "pong"})

    _handlers = {
        "take_over": _take_over,
        "hand_back": _hand_back,
        "close": _close,
        "message.send": _message_send,
        "draft.request": _draft_request,
        "ping": _ping,
    }


async def _draft_schedule(customer_message_id: int) -> None:
    """Generate a draft where bot replies are generated; it reaches the operators through their group."""
    if settings.REPLY_EXECUTION == "celery":
        from apps.console.tasks import copilot_draft_task

        await sync_to_async(copilot_draft_task.delay)(customer_message_id)
        return
    if customer_message_id in _drafting:
        return
    _drafting.add(customer_message_id)

    async def run() -> None:
        try:
            await database_sync_to_async(services.copilot_draft_generate, thread_sensitive=False)(
                customer_message_id=customer_message_id
            )
        except Exception:
            logger.exception("copilot draft failed for message %s", customer_message_id)
        finally:
            _drafting.discard(customer_message_id)

    task = asyncio.create_task(run())
    _draft_tasks.add(task)
    task.add_done_callback(_draft_tasks.discard)


async def drafts_in_flight_wait(timeout: float = 20.0) -> None:
    """Wait for in-process drafts to finish (tests, before they tear down)."""
    pending = list(_draft_tasks)
    if pending:
        await asyncio.wait(pending, timeout=timeout)

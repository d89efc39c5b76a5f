"""The customer chat socket (protocol: docs/websocket.md).

Thin by design: parse and validate the frame, check the conversation token, call a service, send events.
Replies are generated elsewhere (apps.chat.dispatch) and reach this socket through the conversation's group.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.chat import events, presence, selectors, services
from apps.chat.errors import ChatError, invalid_field
from apps.chat.texts_ja import ERRORS
from apps.chat.tokens import conversation_id_from_token, conversation_token_for

# Closing code for a refused token (4000-4999 are free for applications).
CLOSE_INVALID_TOKEN = 4401


def _after_seq(value: object) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise invalid_field("after_seq must be a non-negative integer")
    return value


class ChatConsumer(AsyncWebsocketConsumer):
    conversation_id: uuid.UUID | None = None

    async def disconnect(self, code: int) -> None:
        if self.conversation_id is not None:
            presence.customer_disconnected(self.conversation_id)
            await self.channel_layer.group_discard(events.conversation_group(self.conversation_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if bytes_data is not None:
            return await self._error("binary_not_supported")
        try:
            event = json.loads(text_data or "")
        except (ValueError, RecursionError):  # RecursionError: a frame nested thousands deep
            return await self._error("invalid_json")
        if not isinstance(event, dict):
            return await self._error("invalid_json")
        event_type = event.get("type")
        handler = self._handlers.get(event_type) if isinstance(event_type, str) else None
        if handler is None:
            return await self._error("unknown_event")
        if self.conversation_id is None and event["type"] not in ("hello", "ping"):
            return await self._error("hello_required")
        try:
            await handler(self, event)
        except ChatError as exc:
            extra = {"client_msg_id": event.get("client_msg_id")} if event["type"] == "message.send" else {}
            await self.send_event(events.error(exc.code, exc.message, **extra))
            if exc.code == "invalid_token":
                await self.close(code=CLOSE_INVALID_TOKEN)

    async def chat_event(self, message: dict[str, Any]) -> None:
        """A conversation event from the channel layer, forwarded as is."""
        await self.send_event(message["event"])

    async def send_event(self, event: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))

    async def _error(self, code: str) -> None:
        await self.send_event(events.error(code, ERRORS[code]))

    # Handlers, one per client event type.

    async def _hello(self, event: dict[str, Any]) -> None:
        if self.conversation_id is not None:
            raise invalid_field("hello was already sent on this connection")
        after_seq = _after_seq(event.get("after_seq"))
        token = event.get("token")
        if token is None:
            client = (self.scope.get("client") or [""])[0]
            conversation = await database_sync_to_async(services.conversation_create)(channel="web", client=str(client))
            token = conversation_token_for(conversation.id)
        else:
            conversation_id = conversation_id_from_token(token)
            try:
                conversation = await database_sync_to_async(selectors.conversation_get)(conversation_id=conversation_id)
            except services.Conversation.DoesNotExist:
                raise ChatError("invalid_token") from None
        # Join the group before reading history, so nothing published in between is missed (the client
        # de-duplicates by seq).
        await self.channel_layer.group_add(events.conversation_group(conversation.id), self.channel_name)
        self.conversation_id = conversation.id
        messages = await database_sync_to_async(selectors.conversation_messages_after)(
            conversation_id=conversation.id, after_seq=after_seq
        )
        await self.send_event(
            {
                "type": "conversation.ready",
                "conversation_id": str(conversation.id),
                "token": token,
                "status": conversation.status,
                "last_seq": conversation.last_seq,
            }
        )
        await self.send_event({"type": "history", "messages": [events.message_payload(m) for m in messages]})
        presence.customer_connected(conversation.id)
        pending = await database_sync_to_async(services.reply_resume)(conversation_id=conversation.id)
        if pending is not None:
            await self.send_event(events.reply_started(pending))

    async def _message_send(self, event: dict[str, Any]) -> None:
        message, created = await database_sync_to_async(services.customer_message_receive)(
            conversation_id=self.conversation_id, text=event.get("text"), client_msg_id=event.get("client_msg_id")
        )
        if not created:
            # A resend of a stored message: acknowledge to this socket only; everyone else already has it.
            await self.send_event(events.message_created(message))

    async def _feedback_set(self, event: dict[str, Any]) -> None:
        await database_sync_to_async(services.message_feedback_set)(
            conversation_id=self.conversation_id, seq=event.get("seq"), value=event.get("value")
        )

    async def _operator_request(self, event: dict[str, Any]) -> None:
        await database_sync_to_async(services.conversation_request_operator)(conversation_id=self.conversation_id)

    async def _ping(self, event: dict[str, Any]) -> None:
        await self.send_event({"type": "pong"})

    _handlers = {
        "hello": _hello,
        "message.send": _message_send,
        "feedback.set": _feedback_set,
        "operator.request": _operator_request,
        "ping": _ping,
    }

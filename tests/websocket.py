"""Talking JSON events over a WebsocketCommunicator, for the chat and console socket tests."""

from __future__ import annotations

import json
from typing import Any

TIMEOUT = 20


async def send(comm, event: dict[str, Any]) -> None:
    await comm.send_to(text_data=json.dumps(event, ensure_ascii=False))


async def receive(comm) -> dict[str, Any]:
    return json.loads(await comm.receive_from(timeout=TIMEOUT))


async def receive_until(comm, predicate) -> list[dict[str, Any]]:
    """Every event up to and including the first one `predicate` accepts."""
    seen = []
    while True:
        event = await receive(comm)
        seen.append(event)
        if predicate(event):
            return seen


def is_bot_message(event: dict[str, Any]) -> bool:
    return event["type"] == "message.created" and event["message"]["role"] == "bot"


async def hello(comm, **fields) -> tuple[dict, dict]:
    await send(comm, {"type": "hello", **fields})
    ready = await receive(comm)
    history = await receive(comm)
    assert ready["type"] == "conversation.ready", ready
    assert history["type"] == "history", history
    return ready, history

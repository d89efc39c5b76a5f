"""Distributed generation: a real Celery worker (separate process) answers on the `generation` queue over real
Redis and PostgreSQL, and its tokens reach the customer's socket through the Redis channel layer."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.chat.test_consumer import messages_of
from tests.websocket import hello, is_bot_message, receive_until, send

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


async def test_a_celery_worker_generates_the_reply_and_streams_it(small_faq, generation_worker, communicator_factory):
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    await send(comm, {"type": "message.send", "text": "パスワードがわからなくなった", "client_msg_id": "c1"})
    events = await receive_until(comm, is_bot_message)
    tokens = [e["text"] for e in events if e["type"] == "reply.token"]
    final = events[-1]["message"]
    assert tokens and "".join(tokens).strip() == final["text"]
    assert final["faq"][0]["id"] == "ACC-001"
    stored = await messages_of(ready["conversation_id"])
    assert [m.role for m in stored] == ["customer", "bot"]
    assert settings.REPLY_EXECUTION == "celery"
    await comm.disconnect()

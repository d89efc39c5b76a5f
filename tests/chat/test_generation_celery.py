"""Distributed generation: a real Celery worker (separate process) answers on the `generation` queue over real
Redis and PostgreSQL, and its tokens reach the customer's socket through the Redis channel layer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.chat.test_consumer import messages_of
from tests.websocket import hello, is_bot_message, receive_until, send

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def generation_worker(transactional_db, settings):
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        pytest.fail("run with DATABASE_URL=postgres://... and REDIS_URL=redis://... (bin/test does)")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "REPLY_EXECUTION": "celery",
    }
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "karakuri_cs",
            "worker",
            "-Q",
            "generation",
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "info",
            "-n",
            f"test-generation-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    from karakuri_cs.celery import app

    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail("the Celery worker did not start:\n" + (worker.stdout.read() if worker.stdout else ""))
    settings.REPLY_EXECUTION = "celery"
    yield worker
    worker.terminate()
    worker.wait(timeout=30)


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

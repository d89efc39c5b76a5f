"""Where a bot reply runs: Celery workers on the `generation` queue (with REDIS_URL), or this process.

In-process generation must run on the ASGI server's event loop, because the in-memory channel layer only
delivers within that loop: the blocking pipeline runs in a worker thread, and its publishes (apps.chat.events)
hop back onto the loop. `remember_event_loop` wraps the ASGI application to learn that loop. Without a running
server (management commands) the reply is generated right away in the calling thread.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None
# Keep references to running reply tasks: the event loop holds only weak ones.
_running: set[asyncio.Future] = set()


def remember_event_loop(app):
    """ASGI middleware recording the server's running loop for in-process generation."""

    async def wrapper(scope, receive, send):
        global _server_loop
        _server_loop = asyncio.get_running_loop()
        return await app(scope, receive, send)

    return wrapper


def server_loop() -> asyncio.AbstractEventLoop | None:
    """The ASGI server's event loop, when this process serves."""
    loop = _server_loop
    return loop if loop is not None and loop.is_running() else None


def reply_schedule(*, customer_message_id: int) -> None:
    """Generate the bot's reply to a customer message once the current transaction commits."""
    if settings.REPLY_EXECUTION == "celery":
        from apps.chat.tasks import reply_generate_task

        transaction.on_commit(lambda: reply_generate_task.delay(customer_message_id))
    else:
        transaction.on_commit(lambda: _generate_in_process(customer_message_id))


def _generate_in_process(customer_message_id: int) -> None:
    from apps.chat.pipeline import reply_generate

    loop = _server_loop
    if loop is not None and loop.is_running():
        future = asyncio.run_coroutine_threadsafe(_generate_on_loop(customer_message_id), loop)
        _running.add(future)
        future.add_done_callback(_running.discard)
    else:
        reply_generate(customer_message_id=customer_message_id)


async def _generate_on_loop(customer_message_id: int) -> None:
    from apps.chat.pipeline import reply_generate

    try:
        await database_sync_to_async(reply_generate, thread_sensitive=False)(customer_message_id=customer_message_id)
    except Exception:
        logger.exception("reply generation failed for message %s", customer_message_id)


async def replies_in_flight_wait(timeout: float = 10.0) -> None:
    """Wait for in-process replies to finish (used by tests and the benchmark before they tear down)."""
    pending = [asyncio.wrap_future(f) for f in list(_running)]
    if pending:
        await asyncio.wait(pending, timeout=timeout)

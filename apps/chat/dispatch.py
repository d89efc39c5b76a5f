"""Where a bot reply runs: Celery workers on the `generation` queue (with REDIS_URL), or this process.

In-process generation must run on the ASGI server's event loop, because the in-memory channel layer only
delivers within that loop: the blocking pipeline runs in a worker thread, and its publishes (apps.chat.events)
hop back onto the loop. `remember_event_loop` wraps the ASGI application to learn that loop. Without a running
server (management commands) the reply is generated right away in the calling thread.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

_server_loop: asyncio.AbstractEventLoop | None = None
# Keep references to running reply tasks: the event loop holds only weak ones.
_running: set[asyncio.Future] = set()
# Set when the server begins to shut down: in-process replies stop at their next piece.
_server_stopping = threading.Event()
# How long shutting down waits for in-process replies to stop (one piece of a slow model, a database write).
SHUTDOWN_WAIT_S = 10.0
_shutdown_hooked = False


def remember_event_loop(app):
    """ASGI middleware recording the server's running loop for in-process generation."""

    async def wrapper(scope, receive, send):
        global _server_loop
        loop = asyncio.get_running_loop()
        if loop is not _server_loop:
            _server_loop = loop
            _stop_replies_on_shutdown()
        return await app(scope, receive, send)

    return wrapper


def _stop_replies_on_shutdown() -> None:
    """Under daphne (Twisted), stop in-process replies before the server's loop stops.

    Otherwise SIGTERM on a deploy left each generating thread running to the end of its reply (up to
    LLM_GENERATION_TIMEOUT, plus 10 s per unsendable flush) with the loop already gone, and the process then died
    of a segmentation fault in its final garbage collection. Now each reply stops at its next piece while its
    events can still be sent, is marked abandoned, and the customer's next connection (to the restarted server)
    generates it again.
    """
    global _shutdown_hooked
    reactor = sys.modules.get("twisted.internet.reactor")
    if _shutdown_hooked or reactor is None or not hasattr(reactor, "addSystemEventTrigger"):
        return
    _shutdown_hooked = True
    reactor.addSystemEventTrigger("before", "shutdown", replies_stop)
    atexit.register(_server_tasks_finish)


def _server_tasks_finish() -> None:
    """At exit, finish the tasks the server left on its stopped loop, as `asyncio.run` does.

    Twisted stops daphne's loop without waiting for every application task. A consumer whose input had just been
    woken (a websocket.disconnect queued as the server stopped, with a reply in flight) was then closed by the
    interpreter's last garbage collection, after asyncio's types were torn down, and the process died of a
    segmentation fault (CPython 3.11: repr of a future in Queue.get's cleanup). Cancelled here, the consumers run
    their disconnect code while everything still works.
    """
    loop = _server_loop
    if loop is None or loop.is_running() or loop.is_closed():
        return
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    try:
        loop.run_until_complete(
            asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=SHUTDOWN_WAIT_S)
        )
    except Exception:  # a task that would not end: the process is exiting anyway
        logger.warning("shutting down: %d server task(s) did not finish", len(tasks), exc_info=True)


def replies_stop():
    """Ask in-process replies to stop and wait for them (at most SHUTDOWN_WAIT_S); a Twisted Deferred or None."""
    _server_stopping.set()
    pending = [asyncio.wrap_future(f) for f in list(_running)]
    if not pending:
        return None
    from twisted.internet.defer import Deferred

    logger.info("shutting down: stopping %d reply(s) in progress", len(pending))
    return Deferred.fromFuture(asyncio.ensure_future(asyncio.wait(pending, timeout=SHUTDOWN_WAIT_S)))


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

    # When the server stops (SIGTERM on a deploy) the reply stops at its next piece and is resumed when the
    # customer reconnects (see _stop_replies_on_shutdown).
    loop = asyncio.get_running_loop()
    try:
        await database_sync_to_async(reply_generate, thread_sensitive=False)(
            customer_message_id=customer_message_id,
            stop_when=lambda: _server_stopping.is_set() or not loop.is_running(),
        )
    except Exception:
        logger.exception("reply generation failed for message %s", customer_message_id)


async def replies_in_flight_wait(timeout: float = 10.0) -> None:
    """Wait for in-process replies to finish (used by tests and the benchmark before they tear down)."""
    pending = [asyncio.wrap_future(f) for f in list(_running)]
    if pending:
        await asyncio.wait(pending, timeout=timeout)

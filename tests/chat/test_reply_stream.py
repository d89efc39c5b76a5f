"""How a reply's pieces reach the socket: the first at once, later ones one event each when the model is slower
than the event interval, grouped when it is faster, and all of them before the saved reply."""

from __future__ import annotations

import threading
import time

import pytest

from apps.chat import events, pipeline
from tests.websocket import hello, is_bot_message, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


class PacedBackend:
    """Stands in for a model (the Neuron runtime cannot run here): yields fixed polite pieces `gap` seconds apart."""

    name, model_id = "paced", "paced-stand-in"

    def __init__(self, pieces: list[str], gap: float) -> None:
        self.pieces, self.gap = pieces, gap

    def stream(self, request):
        for i, piece in enumerate(self.pieces):
            if i:
                time.sleep(self.gap)
            yield piece


PIECES = ["パスワードは、", "ログイン画面の", "「パスワードをお忘れの方」", "から", "再設定", "できます。"]


async def _reply_events(monkeypatch, communicator_factory, backend) -> tuple[list[dict], dict]:
    monkeypatch.setattr(pipeline, "get_backend", lambda: backend)
    monkeypatch.setattr(pipeline, "_reply_check_failures", lambda text, request: [])
    comm = await communicator_factory()
    await hello(comm)
    await send(comm, {"type": "message.send", "text": "パスワードを忘れました"})
    seen = await receive_until(comm, is_bot_message)
    await comm.disconnect()
    tokens = [e for e in seen if e["type"] == "reply.token"]
    return tokens, seen[-1]["message"]


async def test_a_model_slower_than_the_event_interval_streams_every_piece_as_it_comes(
    small_faq, communicator_factory, monkeypatch
):
    backend = PacedBackend(PIECES, gap=events.TOKEN_INTERVAL_S * 3)
    tokens, final = await _reply_events(monkeypatch, communicator_factory, backend)
    assert [t["text"] for t in tokens] == PIECES
    assert [t["index"] for t in tokens] == list(range(len(PIECES)))
    assert final["text"] == "".join(PIECES)


async def test_pieces_faster_than_the_event_interval_travel_together_and_none_is_lost(
    small_faq, communicator_factory, monkeypatch
):
    many = [f"{i}番目です。" for i in range(60)]
    backend = PacedBackend(many, gap=events.TOKEN_INTERVAL_S / 10)
    tokens, final = await _reply_events(monkeypatch, communicator_factory, backend)
    assert tokens[0]["text"] == many[0], "the first piece goes out alone, at once"
    assert 2 <= len(tokens) < len(many) / 2, "later pieces are grouped"
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    assert "".join(t["text"] for t in tokens) == "".join(many) == final["text"]


async def test_a_piece_held_back_goes_out_while_the_model_pauses(small_faq, communicator_factory, monkeypatch):
    # The second piece comes just after the first, so it waits for the interval; then the model pauses until
    # the test has received that second piece. A held piece that waited for the next one would never arrive
    # during the pause, and the backend would give up waiting.
    resume = threading.Event()

    class PausingBackend:
        name, model_id = "pausing", "pausing-stand-in"
        resumed_by_client = None

        def stream(self, request):
            yield "少々"
            time.sleep(events.TOKEN_INTERVAL_S / 5)
            yield "お待ちください。"
            PausingBackend.resumed_by_client = resume.wait(timeout=10)
            yield "ご確認いただけます。"

    monkeypatch.setattr(pipeline, "get_backend", PausingBackend)
    monkeypatch.setattr(pipeline, "_reply_check_failures", lambda text, request: [])
    comm = await communicator_factory()
    await hello(comm)
    await send(comm, {"type": "message.send", "text": "パスワードを忘れました"})
    first = await receive_until(comm, lambda e: e["type"] == "reply.token")
    second = await receive_until(comm, lambda e: e["type"] == "reply.token")
    resume.set()
    rest = await receive_until(comm, is_bot_message)
    assert (first[-1]["text"], second[-1]["text"]) == ("少々", "お待ちください。")
    assert PausingBackend.resumed_by_client is True
    assert [e["text"] for e in rest if e["type"] == "reply.token"] == ["ご確認いただけます。"]
    await comm.disconnect()


def test_publishing_to_a_closed_event_loop_reports_it_and_does_not_raise():
    import asyncio

    closed = asyncio.new_event_loop()
    closed.close()
    outbox = events._Outbox(closed)
    sent = outbox.put("chat.conversation.test", {"type": "chat.event", "event": {"type": "pong"}})
    assert isinstance(sent.exception(timeout=1), RuntimeError)
    # The next event is tried again rather than stuck behind the failed one.
    assert isinstance(outbox.put("chat.conversation.test", {"type": "chat.event"}).exception(timeout=1), RuntimeError)


def test_a_failed_send_is_reported_and_the_events_after_it_still_go(monkeypatch):
    import asyncio

    delivered = []

    class FailingLayer:
        """Fault injector: a channel layer that is down for one group."""

        async def group_send(self, group, message):
            if group == "down":
                raise ConnectionError("channel layer unreachable")
            delivered.append(group)

    monkeypatch.setattr(events, "get_channel_layer", FailingLayer)
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        outbox = events._Outbox(loop)
        lost, after = outbox.put("down", {"type": "chat.event"}), outbox.put("up", {"type": "chat.event"})
        assert isinstance(lost.exception(timeout=5), ConnectionError)
        assert after.result(timeout=5) is None
        assert delivered == ["up"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=5)
        loop.close()

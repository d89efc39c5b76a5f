"""Stopping the server (SIGTERM, as a deploy or systemd does) while it writes a reply in-process.

The real application under daphne, a real WebSocket client, and a stand-in for the OpenAI-compatible model
server (vLLM or TGI cannot run here) that streams one piece at a time for as long as it is read. Before, the
generating thread went on to the end of the reply with the server's loop already gone (a model that keeps
talking held the process until LLM_GENERATION_TIMEOUT and more), and the process then died of a segmentation
fault in its final garbage collection. Now the reply stops at its next piece, the process exits cleanly, and
the customer's next connection, to the restarted server, gets the reply.
"""

from __future__ import annotations

import asyncio
import json
import signal

import pytest
import websockets

from apps.chat.models import Message
from tests.chat.conftest_browser import BROWSER_FAQ, ChatServer, server_env
from tests.llm.openai_standin import OpenAIStandIn

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = BROWSER_FAQ[0].question


async def _events_until(ws, predicate) -> list[dict]:
    seen = []
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
        seen.append(event)
        if predicate(event):
            return seen


def _chat_socket(server: ChatServer):
    return websockets.connect(server.url.replace("http://", "ws://") + "/ws/chat/", origin=server.url)


async def _ask_and_wait_for_the_first_piece(server: ChatServer) -> str:
    async with _chat_socket(server) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        ready = json.loads(await ws.recv())
        await ws.send(json.dumps({"type": "message.send", "text": QUESTION}))
        await _events_until(ws, lambda e: e["type"] == "reply.token")
        return ready["token"]


async def _reconnect_and_wait_for_the_reply(server: ChatServer, token: str) -> dict:
    async with _chat_socket(server) as ws:
        await ws.send(json.dumps({"type": "hello", "token": token}))
        events = await _events_until(ws, lambda e: e["type"] == "message.created" and e["message"]["role"] == "bot")
        return events[-1]["message"]


def test_a_server_stopped_mid_reply_exits_cleanly_and_the_reply_comes_after_the_restart(
    tmp_path, django_db_blocker, settings
):
    from apps.faq.index import index_update
    from apps.faq.services import faq_entries_upsert

    settings.FAQ_INDEX_DIR = tmp_path / "index"
    faq_entries_upsert(rows=BROWSER_FAQ, actor="test")
    index_update()
    model = OpenAIStandIn()
    env = server_env(
        index_dir=tmp_path / "index",
        REPLY_BACKEND="openai",
        LLM_OPENAI_BASE_URL=model.base_url,
        LLM_OPENAI_MODEL="forever",  # a piece every 0.1 s for as long as it is read
    )
    server = ChatServer(env=env, log_path=tmp_path / "daphne.log")
    try:
        server.start()
        token = asyncio.run(_ask_and_wait_for_the_first_piece(server))

        server.process.send_signal(signal.SIGTERM)
        # The model would stream forever: the server exits only if it stops the reply.
        assert server.process.wait(timeout=60) == 0, server.log_tail()
        assert model.disconnected.wait(timeout=10)
        [customer] = Message.objects.filter(role=Message.Role.CUSTOMER)
        assert customer.provenance.get("reply_abandoned") is True
        assert not Message.objects.filter(role=Message.Role.BOT).exists()

        server.env["LLM_OPENAI_MODEL"] = "karakuri"  # a whole reply this time
        server.start()
        reply = asyncio.run(_reconnect_and_wait_for_the_reply(server, token))
        assert reply["in_reply_to_seq"] == customer.seq
        # Generated again by the model (its words fail the grounding check against a password FAQ, so the
        # customer gets the FAQ-based reply; what matters here is that the reply was made again and saved).
        assert [r["body"]["model"] for r in model.requests] == ["forever", "karakuri"]
        assert Message.objects.get(role=Message.Role.BOT).in_reply_to_id == customer.id
    finally:
        server.stop()
        server.sock.close()
        model.close()
    assert server.process.returncode == 0, server.log_tail()

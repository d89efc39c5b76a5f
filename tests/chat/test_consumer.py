"""The customer socket through the real ASGI application (WebsocketCommunicator), real search index."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from apps.chat.dispatch import replies_in_flight_wait
from apps.chat.models import Conversation, Message
from apps.chat.texts_ja import HANDOFF_REQUESTED
from apps.chat.tokens import conversation_token_for
from apps.llm.texts_ja import NOT_FOUND
from tests.websocket import TIMEOUT, hello, is_bot_message, receive, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def messages_of(conversation_id) -> list[Message]:
    return list(Message.objects.filter(conversation_id=conversation_id).order_by("seq"))


async def test_it_answers_from_the_faq_with_a_streamed_reply_and_provenance(small_faq, communicator_factory):
    comm = await communicator_factory()
    ready, history = await hello(comm)
    assert history["messages"] == []

    await send(comm, {"type": "message.send", "text": "パスワード忘れちゃったんだけど", "client_msg_id": "m1"})
    events = await receive_until(comm, is_bot_message)

    customer_echo = events[0]
    assert customer_echo["type"] == "message.created"
    assert customer_echo["message"]["role"] == "customer"
    assert customer_echo["message"]["seq"] == 1
    types = [e["type"] for e in events]
    assert "reply.started" in types
    tokens = [e for e in events if e["type"] == "reply.token"]
    assert tokens and types.index("reply.started") < types.index("reply.token")
    assert [t["index"] for t in tokens] == list(range(len(tokens)))
    final = events[-1]["message"]
    assert "".join(t["text"] for t in tokens).strip() == final["text"]
    assert "再設定用のメール" in final["text"]
    assert final["faq"][0]["id"] == "ACC-001"
    assert final["in_reply_to_seq"] == 1

    stored = await messages_of(ready["conversation_id"])
    assert [(m.seq, m.role) for m in stored] == [(1, "customer"), (2, "bot")]
    provenance = stored[1].provenance
    assert provenance["cited_faq_ids"] == ["ACC-001"]
    assert provenance["faq"][0]["score"] > 0
    assert provenance["kb_revision"] >= 1
    assert provenance["backend"] == "template"
    assert provenance["model_id"]
    assert set(provenance["timings_ms"]) >= {"retrieval", "first_token", "generation", "total"}
    await comm.disconnect()


async def test_it_offers_a_person_when_no_faq_answers(small_faq, communicator_factory):
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    await send(comm, {"type": "message.send", "text": "明日の東京の天気を教えて"})
    final = (await receive_until(comm, is_bot_message))[-1]["message"]
    assert final["text"] == NOT_FOUND
    assert final["faq"] == []
    stored = await messages_of(ready["conversation_id"])
    assert stored[-1].provenance["confident"] is False
    await comm.disconnect()


async def test_a_reconnecting_client_gets_only_what_it_missed(small_faq, communicator_factory):
    first = await communicator_factory()
    ready, _ = await hello(first)
    await send(first, {"type": "message.send", "text": "返品したい", "client_msg_id": "a"})
    await receive_until(first, is_bot_message)
    await first.disconnect()

    second = await communicator_factory()
    again, history = await hello(second, token=ready["token"], after_seq=1)
    assert again["conversation_id"] == ready["conversation_id"]
    assert again["last_seq"] == 2
    assert [(m["seq"], m["role"]) for m in history["messages"]] == [(2, "bot")]

    third = await communicator_factory()
    _, full = await hello(third, token=ready["token"])
    assert [m["seq"] for m in full["messages"]] == [1, 2]
    await second.disconnect()
    await third.disconnect()


async def test_a_resent_message_is_stored_once(small_faq, communicator_factory):
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    await send(comm, {"type": "message.send", "text": "支払い方法は？", "client_msg_id": "same"})
    await receive_until(comm, is_bot_message)
    await send(comm, {"type": "message.send", "text": "支払い方法は？", "client_msg_id": "same"})
    ack = await receive(comm)
    assert ack["type"] == "message.created"
    assert ack["message"]["seq"] == 1
    assert await comm.receive_nothing(timeout=0.5)
    stored = await messages_of(ready["conversation_id"])
    assert [m.role for m in stored] == ["customer", "bot"]
    await comm.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"text_data": "{not json"}, "invalid_json"),
        ({"text_data": "[1, 2]"}, "invalid_json"),
        ({"bytes_data": b"\x00\x01binary"}, "binary_not_supported"),
        ({"text_data": json.dumps({"type": "nope"})}, "unknown_event"),
        ({"text_data": json.dumps({"text": "no type"})}, "unknown_event"),
        ({"text_data": json.dumps({"type": ["message.send"]})}, "unknown_event"),
        ({"text_data": json.dumps({"type": {"a": 1}})}, "unknown_event"),
        ({"text_data": "[" * 100000 + "]" * 100000}, "invalid_json"),
        ({"text_data": json.dumps({"type": "message.send", "text": ""})}, "empty_message"),
        ({"text_data": json.dumps({"type": "message.send", "text": "   \n "})}, "empty_message"),
        ({"text_data": json.dumps({"type": "message.send", "text": "あ" * 1001})}, "message_too_long"),
        ({"text_data": json.dumps({"type": "message.send", "text": "こんにちは\x00\x07"})}, "invalid_characters"),
        ({"text_data": json.dumps({"type": "message.send", "text": 42})}, "invalid_field"),
        ({"text_data": json.dumps({"type": "message.send", "text": "x", "client_msg_id": "z" * 65})}, "invalid_field"),
        ({"text_data": json.dumps({"type": "feedback.set", "seq": 99, "value": 1})}, "not_found"),
        ({"text_data": json.dumps({"type": "feedback.set", "seq": 1, "value": 5})}, "invalid_field"),
        ({"text_data": json.dumps({"type": "hello"})}, "invalid_field"),
    ],
)
async def test_it_rejects_bad_input_and_stays_usable(transactional_db, communicator_factory, frame, code):
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    await comm.send_to(**frame)
    error = await receive(comm)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"], "a message fit to show the customer"
    await send(comm, {"type": "ping"})
    assert (await receive(comm))["type"] == "pong"
    assert await messages_of(ready["conversation_id"]) == []
    await comm.disconnect()


async def test_events_before_hello_are_refused(transactional_db, communicator_factory):
    comm = await communicator_factory()
    await send(comm, {"type": "message.send", "text": "こんにちは"})
    assert (await receive(comm))["code"] == "hello_required"
    assert not await database_sync_to_async(Message.objects.exists)()
    await comm.disconnect()


@pytest.mark.parametrize("token", ["forged.token.value", "", 12345, "x" * 1000])
async def test_a_bad_token_is_refused_and_the_socket_closed(transactional_db, communicator_factory, token):
    comm = await communicator_factory()
    await send(comm, {"type": "hello", "token": token})
    error = await receive(comm)
    assert error["code"] == "invalid_token"
    closed = await comm.receive_output(timeout=TIMEOUT)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_a_token_for_a_conversation_that_does_not_exist_is_refused(transactional_db, communicator_factory):
    import uuid

    comm = await communicator_factory()
    await send(comm, {"type": "hello", "token": conversation_token_for(uuid.uuid4())})
    assert (await receive(comm))["code"] == "invalid_token"


async def test_another_customers_messages_are_never_seen(small_faq, communicator_factory):
    alice = await communicator_factory()
    alice_ready, _ = await hello(alice)
    bob = await communicator_factory()
    await hello(bob)
    await send(alice, {"type": "message.send", "text": "注文した物がまだ届かない"})
    await receive_until(alice, is_bot_message)
    assert await bob.receive_nothing(timeout=0.5)
    await alice.disconnect()
    await bob.disconnect()


async def test_a_flood_is_rate_limited_and_nothing_stored_twice(small_faq, communicator_factory, settings):
    settings.CHAT_RATE_LIMIT = "3/minute"
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    errors = []
    for i in range(6):
        await send(comm, {"type": "message.send", "text": f"テスト{i}", "client_msg_id": f"flood-{i}"})
    await replies_in_flight_wait()
    while not await comm.receive_nothing(timeout=0.5):
        event = await receive(comm)
        if event["type"] == "error":
            errors.append(event)
    assert [e["code"] for e in errors] == ["rate_limited"] * 3
    assert [e["client_msg_id"] for e in errors] == ["flood-3", "flood-4", "flood-5"]
    stored = await messages_of(ready["conversation_id"])
    assert [m.text for m in stored if m.role == "customer"] == ["テスト0", "テスト1", "テスト2"]
    await comm.disconnect()


async def test_talk_to_a_person_silences_the_bot(small_faq, communicator_factory):
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    await send(comm, {"type": "operator.request"})
    events = await receive_until(comm, lambda e: e["type"] == "conversation.status")
    system = [e for e in events if e["type"] == "message.created"][0]["message"]
    assert system["role"] == "system" and system["text"] == HANDOFF_REQUESTED
    assert events[-1]["status"] == "waiting_for_operator"

    await send(comm, {"type": "message.send", "text": "パスワードを忘れました"})
    echo = await receive(comm)
    assert echo["message"]["role"] == "customer"
    await replies_in_flight_wait()
    assert await comm.receive_nothing(timeout=0.5), "the bot stays silent"
    conversation = await database_sync_to_async(Conversation.objects.get)(id=ready["conversation_id"])
    assert conversation.status == "waiting_for_operator"
    assert [m.role for m in await messages_of(conversation.id)] == ["system", "customer"]
    await comm.disconnect()


async def test_thumbs_are_stored_and_broadcast(small_faq, communicator_factory):
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    await send(comm, {"type": "message.send", "text": "届くまで何日？"})
    bot = (await receive_until(comm, is_bot_message))[-1]["message"]
    await send(comm, {"type": "feedback.set", "seq": bot["seq"], "value": -1})
    assert await receive(comm) == {"type": "feedback.updated", "seq": bot["seq"], "value": -1}
    await send(comm, {"type": "feedback.set", "seq": 1, "value": 1})
    assert (await receive(comm))["code"] == "not_found", "only bot replies take thumbs"
    stored = await messages_of(ready["conversation_id"])
    assert [m.feedback for m in stored] == [None, -1]
    await comm.disconnect()


async def test_html_in_a_message_is_stored_and_sent_as_plain_text(small_faq, communicator_factory):
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    text = "<script>alert(1)</script><b>返品</b>"
    await send(comm, {"type": "message.send", "text": text})
    echo = await receive(comm)
    assert echo["message"]["text"] == text
    await receive_until(comm, is_bot_message)
    assert (await messages_of(ready["conversation_id"]))[0].text == text
    await comm.disconnect()


class SlowBackend:
    """Stands in for a real model generating slowly (a fault injector, not a model): yields 200 tokens, 20 ms
    apart, and counts how many it produced before it was closed."""

    name, model_id = "slow", "fault-injector"

    def __init__(self) -> None:
        self.produced = 0
        self.closed = False

    def stream(self, request):
        import time

        try:
            for _ in range(200):
                time.sleep(0.02)
                self.produced += 1
                yield "です。"
        finally:
            self.closed = True


async def test_a_customer_who_leaves_mid_stream_stops_the_generation_and_gets_it_on_return(
    small_faq, communicator_factory, monkeypatch
):
    from apps.chat import pipeline

    slow = SlowBackend()
    monkeypatch.setattr(pipeline, "get_backend", lambda: slow)
    comm = await communicator_factory()
    ready, _ = await hello(comm)
    await send(comm, {"type": "message.send", "text": "パスワードを忘れた"})
    await receive_until(comm, lambda e: e["type"] == "reply.token")
    await comm.disconnect()
    await replies_in_flight_wait()
    assert slow.closed and slow.produced < 200, "generation stopped early"
    stored = await messages_of(ready["conversation_id"])
    assert [m.role for m in stored] == ["customer"]
    assert stored[0].provenance.get("reply_abandoned") is True

    from apps.llm.backends.template import TemplateBackend

    monkeypatch.setattr(pipeline, "get_backend", lambda: TemplateBackend())
    back = await communicator_factory()
    await send(back, {"type": "hello", "token": ready["token"], "after_seq": 1})
    events = await receive_until(back, is_bot_message)
    assert {"type": "reply.started", "in_reply_to_seq": 1} in events
    assert "再設定用のメール" in events[-1]["message"]["text"]
    await back.disconnect()

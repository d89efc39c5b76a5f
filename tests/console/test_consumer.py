"""The operator socket through the real ASGI application, next to real customer sockets."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from apps.chat.models import Conversation, Message
from apps.chat.texts_ja import OPERATOR_HANDED_BACK, OPERATOR_JOINED
from apps.console.consumers import drafts_in_flight_wait
from apps.training.models import Correction
from tests.websocket import hello, receive, receive_until, send

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD_QUESTION = "パスワード忘れちゃったんだけど"


def of_type(kind: str, **fields):
    return lambda e: e["type"] == kind and all(e.get(k) == v for k, v in fields.items())


async def signed_in(console_socket, user):
    comm, connected = await console_socket(user)
    assert connected
    ready = await receive(comm)
    assert ready["type"] == "ready" and ready["user"]["name"] == user.username
    return comm


async def asked_for_a_person_and_taken_over(console, communicator_factory):
    """A customer who asked for a person, then asked PASSWORD_QUESTION; the console's operator took over.
    Returns (customer socket, conversation id)."""
    customer = await communicator_factory()
    ready, _ = await hello(customer)
    conversation_id = ready["conversation_id"]
    await send(customer, {"type": "operator.request"})
    await receive_until(customer, of_type("conversation.status", status="waiting_for_operator"))
    await send(customer, {"type": "message.send", "text": PASSWORD_QUESTION})
    await receive_until(customer, lambda e: e["type"] == "message.created" and e["message"]["role"] == "customer")
    await send(console, {"type": "take_over", "conversation_id": conversation_id, "request_id": "t"})
    await receive_until(console, of_type("ack", request_id="t"))
    return customer, conversation_id


async def test_anonymous_users_and_users_without_a_role_are_refused(console_socket, outsider):
    for user in (None, outsider):
        comm, connected = await console_socket(user)
        assert not connected


async def test_a_socket_from_another_site_is_refused(console_socket, operator):
    comm, connected = await console_socket(operator, origin=b"https://evil.example")
    assert not connected


async def test_an_operator_sees_customers_live_takes_over_and_answers(
    console_socket, communicator_factory, operator, operator2
):
    console = await signed_in(console_socket, operator)
    other = await signed_in(console_socket, operator2)
    customer = await communicator_factory()
    ready, _ = await hello(customer)
    conversation_id = ready["conversation_id"]

    # The customer asks for a person: the operators hear of it with the conversation's state.
    await send(customer, {"type": "operator.request"})
    waiting = (await receive_until(console, of_type("conversation.updated", conversation_id=conversation_id)))[-1]
    assert waiting["conversation"]["status"] == "waiting_for_operator"
    assert waiting["conversation"]["waiting_since"]
    await send(customer, {"type": "message.send", "text": "<b>急いでいます</b>", "client_msg_id": "c1"})
    seen = (await receive_until(console, of_type("message.created", conversation_id=conversation_id)))[-1]
    assert seen["message"]["role"] in ("system", "customer")
    if seen["message"]["role"] == "system":
        seen = (await receive_until(console, of_type("message.created", conversation_id=conversation_id)))[-1]
    assert seen["message"]["text"] == "<b>急いでいます</b>"

    # Take over: acknowledged; the customer sees a person joined; the bot never answers.
    await send(console, {"type": "take_over", "conversation_id": conversation_id, "request_id": "t1"})
    await receive_until(console, of_type("ack", request_id="t1"))
    customer_events = await receive_until(customer, of_type("conversation.status", status="operator"))
    joined = [e for e in customer_events if e["type"] == "message.created" and e["message"]["role"] == "system"]
    assert joined[-1]["message"]["text"] == OPERATOR_JOINED

    # A second operator cannot take it.
    await send(other, {"type": "take_over", "conversation_id": conversation_id, "request_id": "t2"})
    refused = (await receive_until(other, of_type("error", request_id="t2")))[-1]
    assert refused["code"] == "held_by_other" and refused["message"]

    # The holder answers; the customer sees role=operator.
    await send(
        console,
        {"type": "message.send", "conversation_id": conversation_id, "text": "担当の者です。", "request_id": "s1"},
    )
    await receive_until(console, of_type("ack", request_id="s1"))
    reply = (
        await receive_until(customer, lambda e: e["type"] == "message.created" and e["message"]["role"] == "operator")
    )[-1]
    assert reply["message"]["text"] == "担当の者です。"
    assert "provenance" not in reply["message"], "the customer never sees the operator's name or provenance"

    # Hand back: the customer sees the bot is back.
    await send(console, {"type": "hand_back", "conversation_id": conversation_id, "request_id": "h1"})
    back = await receive_until(customer, of_type("conversation.status", status="bot"))
    assert any(e["type"] == "message.created" and e["message"]["text"] == OPERATOR_HANDED_BACK for e in back)
    roles = await database_sync_to_async(
        lambda: list(Message.objects.filter(conversation_id=conversation_id).values_list("role", flat=True))
    )()
    assert "bot" not in roles
    for comm in (console, other, customer):
        await comm.disconnect()


async def test_a_copilot_draft_arrives_and_sending_it_records_a_copilot_edit(
    small_faq, console_socket, communicator_factory, operator
):
    console = await signed_in(console_socket, operator)
    customer, conversation_id = await asked_for_a_person_and_taken_over(console, communicator_factory)

    await send(console, {"type": "draft.request", "conversation_id": conversation_id, "request_id": "d"})
    draft = (await receive_until(console, of_type("draft.ready", conversation_id=conversation_id)))[-1]["draft"]
    assert "再設定用のメール" in draft["text"] and draft["cited_faq_ids"] == ["ACC-001"]
    await drafts_in_flight_wait()
    # Asking again returns the same draft without generating another.
    await send(console, {"type": "draft.request", "conversation_id": conversation_id, "request_id": "d2"})
    again = (await receive_until(console, of_type("draft.ready", conversation_id=conversation_id)))[-1]["draft"]
    assert again["id"] == draft["id"]

    edited = draft["text"].replace("お問い合わせありがとうございます。", "")
    await send(
        console,
        {
            "type": "message.send",
            "conversation_id": conversation_id,
            "text": edited,
            "draft_id": draft["id"],
            "request_id": "s",
        },
    )
    await receive_until(console, of_type("ack", request_id="s"))
    correction = await database_sync_to_async(Correction.objects.get)()
    assert correction.kind == "copilot_edit"
    assert correction.rejected_text == draft["text"] and correction.chosen_text == edited.strip()
    bots = await database_sync_to_async(Message.objects.filter(role="bot").count)()
    assert bots == 0
    await console.disconnect()
    await customer.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid_json"),
        ('{"type": "explode"}', "unknown_event"),
        ('{"type": "take_over", "conversation_id": "nope"}', "invalid_field"),
        ('{"type": "take_over", "conversation_id": "8c8d3c3e-3c7e-4f43-9a43-6f4f0a4c9b10"}', "not_found"),
        (
            '{"type": "message.send", "conversation_id": "8c8d3c3e-3c7e-4f43-9a43-6f4f0a4c9b10", "text": "x", "draft_id": "1"}',
            "invalid_field",
        ),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_usable(console_socket, operator, frame, code):
    console = await signed_in(console_socket, operator)
    await console.send_to(text_data=frame)
    error = await receive(console)
    assert error["type"] == "error" and error["code"] == code and error["message"]
    await send(console, {"type": "ping"})
    assert (await receive(console))["type"] == "pong"
    await console.disconnect()


async def test_an_operator_message_to_a_conversation_one_does_not_hold_is_refused(console_socket, operator):
    conversation = await database_sync_to_async(Conversation.objects.create)()
    console = await signed_in(console_socket, operator)
    await send(console, {"type": "message.send", "conversation_id": str(conversation.id), "text": "x", "request_id": 1})
    error = (await receive_until(console, of_type("error", request_id=1)))[-1]
    assert error["code"] == "not_holder"
    await console.disconnect()

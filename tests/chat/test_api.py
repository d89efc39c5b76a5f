"""The customer chat over plain HTTP (same services as the socket)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from apps.chat.models import Conversation, Message
from apps.chat.tokens import conversation_token_for

pytestmark = pytest.mark.django_db(transaction=True)


def post(client: Client, path: str, data, token: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    body = data if isinstance(data, str | bytes) else json.dumps(data, ensure_ascii=False)
    return client.post(path, body, content_type="application/json", **headers, **extra)


@pytest.fixture
def conversation(client):
    response = client.post("/api/chat/conversations/")
    assert response.status_code == 201
    return response.json()


def test_it_answers_a_question_over_http(small_faq, client, conversation):
    token = conversation["token"]
    response = post(
        client, "/api/chat/messages/?wait=20", {"text": "返品のやり方を知りたい", "client_msg_id": "h1"}, token
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["message"]["role"] == "customer"
    assert body["reply"]["role"] == "bot"
    assert body["reply"]["faq"][0]["id"] == "RET-001"
    assert "8日以内" in body["reply"]["text"]

    listed = client.get("/api/chat/messages/?after_seq=1", HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert listed["status"] == "bot"
    assert [m["seq"] for m in listed["messages"]] == [2]


def test_a_resend_returns_the_stored_message(small_faq, client, conversation):
    token = conversation["token"]
    first = post(client, "/api/chat/messages/", {"text": "支払い方法", "client_msg_id": "dup"}, token)
    again = post(client, "/api/chat/messages/", {"text": "支払い方法", "client_msg_id": "dup"}, token)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["message"]["seq"] == first.json()["message"]["seq"]
    assert Message.objects.filter(role="customer").count() == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{broken", 400, "invalid_json"),
        ("[]", 400, "invalid_json"),
        ("[" * 100000 + "]" * 100000, 400, "invalid_json"),
        ('"just a string"', 400, "invalid_json"),
        ({"text": ""}, 400, "empty_message"),
        ({"text": "長" * 1001}, 413, "message_too_long"),
        ({"text": "a\x1bb"}, 400, "invalid_characters"),
        ({"text": None}, 400, "invalid_field"),
    ],
)
def test_it_rejects_bad_messages_and_stores_nothing(transactional_db, client, conversation, body, status, code):
    response = post(client, "/api/chat/messages/", body, conversation["token"])
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert not Message.objects.exists()


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer forged", "Token abc", "Bearer " + "x" * 500])
def test_it_refuses_a_missing_or_forged_token(transactional_db, client, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.get("/api/chat/messages/", **extra)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


def test_another_conversations_token_shows_only_that_conversation(small_faq, client, conversation):
    post(client, "/api/chat/messages/", {"text": "パスワードを忘れた"}, conversation["token"])
    other = Conversation.objects.create()
    listed = client.get("/api/chat/messages/", HTTP_AUTHORIZATION=f"Bearer {conversation_token_for(other.id)}")
    assert listed.status_code == 200
    assert listed.json()["messages"] == []


def test_feedback_and_talk_to_a_person(small_faq, client, conversation):
    token = conversation["token"]
    reply = post(client, "/api/chat/messages/?wait=20", {"text": "いつ届く？"}, token).json()["reply"]
    response = post(client, "/api/chat/feedback/", {"seq": reply["seq"], "value": 1}, token)
    assert response.json() == {"seq": reply["seq"], "value": 1}
    assert Message.objects.get(role="bot").feedback == 1
    assert post(client, "/api/chat/feedback/", {"seq": reply["seq"], "value": "good"}, token).status_code == 400

    assert post(client, "/api/chat/operator-request/", {}, token).json() == {"status": "waiting_for_operator"}
    after = post(client, "/api/chat/messages/?wait=1", {"text": "もしもし"}, token).json()
    assert after["reply"] is None, "the bot stays silent once a person is asked for"


def test_the_openapi_schema_describes_the_chat_api(db, client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert {
        "/api/chat/conversations/",
        "/api/chat/messages/",
        "/api/chat/feedback/",
        "/api/chat/operator-request/",
    } <= set(schema["paths"])
    assert "post" in schema["paths"]["/api/chat/messages/"]


def test_new_conversations_are_limited_per_client_address(transactional_db, client, settings):
    settings.CHAT_NEW_CONVERSATION_RATE_LIMIT = "2/minute"
    statuses = [client.post("/api/chat/conversations/", REMOTE_ADDR="198.51.100.7").status_code for _ in range(3)]
    assert statuses == [201, 201, 429]
    assert client.post("/api/chat/conversations/", REMOTE_ADDR="198.51.100.8").status_code == 201
    assert Conversation.objects.count() == 3

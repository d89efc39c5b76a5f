"""Console pages and API over HTTP: who may see what, the correction form, canned responses, knowledge gaps."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.test import Client

from apps.chat.models import Conversation
from apps.console import services
from apps.console.models import AuditEntry, CannedResponse
from apps.faq.models import FaqEntry
from apps.llm.attributes import ATTRIBUTE_NAMES, BUILTIN_DEFAULTS
from apps.training.models import Correction
from tests.console.conftest import conversation_with, logged_in_client

pytestmark = pytest.mark.django_db

XSS = '<script>alert(1)</script><img src=x onerror="alert(2)">'


@pytest.fixture
def answered(faq_entries):
    conversation = conversation_with(
        ("customer", "パスワードを忘れた " + XSS),
        ("bot", "ログイン画面の「パスワードをお忘れの方」から再設定いただけます。"),
        faq=[{"id": "ACC-001", "question": faq_entries[0].question, "score": 0.8, "sparse": None, "dense": 0.8}],
        cited_faq_ids=["ACC-001"],
        confident=True,
        kb_revision=1,
        backend="template",
        model_id="template-v1",
    )
    return conversation


def pages(conversation_id) -> list[str]:
    return [
        "/console/",
        f"/console/conversations/{conversation_id}/",
        f"/console/conversations/{conversation_id}/messages/2/correct/",
        "/console/gaps/",
        "/console/canned/",
        "/console/audit/",
    ]


APIS = ["/console/api/queue/", "/console/api/conversations/{id}/"]


def test_anonymous_users_are_sent_to_the_login_page(client, answered):
    for path in pages(answered.id):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/console/login/?next=")
    for path in APIS:
        assert client.get(path.format(id=answered.id)).status_code == 403


def test_users_without_a_console_role_are_refused(outsider, answered):
    client = logged_in_client(outsider)
    for path in pages(answered.id) + [p.format(id=answered.id) for p in APIS]:
        assert client.get(path).status_code == 403, path
    assert client.post(f"/console/conversations/{answered.id}/messages/2/correct/", {}).status_code == 403


def test_operators_see_the_console_but_not_the_audit_log(operator, supervisor, answered):
    client = logged_in_client(operator)
    for path in pages(answered.id)[:-1]:
        assert client.get(path).status_code == 200, path
    assert client.get("/console/audit/").status_code == 403
    assert b'data-testid="nav-audit"' not in client.get("/console/").content
    boss = logged_in_client(supervisor)
    assert boss.get("/console/audit/").status_code == 200
    assert b'data-testid="nav-audit"' in boss.get("/console/").content


def test_the_login_page_is_japanese_and_signs_in(operator):
    operator.set_password("pw-for-tests-only")
    operator.save()
    client = Client()
    page = client.get("/console/login/")
    assert page.status_code == 200 and "ログイン" in page.content.decode()
    wrong = client.post("/console/login/", {"username": "operator1", "password": "nope"})
    assert "正しくありません" in wrong.content.decode()
    ok = client.post("/console/login/", {"username": "operator1", "password": "pw-for-tests-only", "next": "/console/"})
    assert ok.status_code == 302 and ok["Location"] == "/console/"
    assert client.get("/console/").status_code == 200


def test_pages_send_a_strict_content_security_policy(operator, answered):
    response = logged_in_client(operator).get(f"/console/conversations/{answered.id}/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"


def test_the_queue_lists_waiting_first_oldest_wait_first_then_held_bot_and_closed(operator):
    late = conversation_with(("customer", "二番目に待っている"), status=Conversation.Status.WAITING_FOR_OPERATOR)
    early = conversation_with(("customer", "一番長く待っている"), status=Conversation.Status.WAITING_FOR_OPERATOR)
    Conversation.objects.filter(id=early.id).update(waiting_since=late.waiting_since - timedelta(minutes=5))
    bot = conversation_with(("customer", "AIが対応中"))
    closed = conversation_with(("customer", "終わった会話"), status=Conversation.Status.CLOSED)
    Conversation.objects.create()  # empty: not listed
    data = logged_in_client(operator).get("/console/api/queue/").json()["sections"]
    assert list(data) == ["waiting", "operator", "bot", "closed"]
    assert [r["id"] for r in data["waiting"]] == [str(early.id), str(late.id)]
    assert data["waiting"][0]["first_question"] == "一番長く待っている"
    assert data["waiting"][0]["waiting_since"]
    assert [r["id"] for r in data["bot"]] == [str(bot.id)]
    assert [r["id"] for r in data["closed"]] == [str(closed.id)]

    client = logged_in_client(operator)
    found = client.get("/console/api/queue/", {"q": "長く待って"}).json()["sections"]
    assert [r["id"] for rows in found.values() for r in rows] == [str(early.id)]
    only_closed = client.get("/console/api/queue/", {"status": "closed"}).json()["sections"]
    assert list(only_closed) == ["closed"]
    assert client.get("/console/api/queue/", {"status": "nope"}).status_code == 400


def test_the_conversation_api_gives_the_transcript_with_provenance(operator, answered):
    data = logged_in_client(operator).get(f"/console/api/conversations/{answered.id}/").json()
    customer, bot = data["messages"]
    assert customer["text"].endswith(XSS)  # JSON, shown by the page with textContent
    assert bot["provenance"]["cited_faq_ids"] == ["ACC-001"]
    assert bot["provenance"]["backend"] == "template"
    assert logged_in_client(operator).get(f"/console/api/conversations/{uuid.uuid4()}/").status_code == 404


def correction_post(**changes) -> dict:
    data = {
        "chosen_text": "ログイン画面の「パスワードをお忘れの方」から再設定いただけます。",
        "faq_choice": "ACC-001",
        "reason_tags": ["冗長"],
        "extra_tags": "説明不足、手順",
        **{f"attr_{n}": str(v) for n, v in BUILTIN_DEFAULTS.items()},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_correction_form_shows_customer_text_as_text(operator, answered):
    page = logged_in_client(operator).get(f"/console/conversations/{answered.id}/messages/2/correct/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'name="csrfmiddlewaretoken"' in page
    for name in ATTRIBUTE_NAMES:
        assert f'name="attr_{name}"' in page


def test_a_correction_posted_through_the_form_is_stored(operator, answered):
    client = logged_in_client(operator)
    response = client.post(
        f"/console/conversations/{answered.id}/messages/2/correct/", correction_post(add_phrasing="on")
    )
    assert response.status_code == 302
    correction = Correction.objects.get()
    assert correction.reason_tags == ["冗長", "説明不足", "手順"]
    assert correction.faq_external_id == "ACC-001"
    assert correction.operator == operator
    assert answered.messages.get(seq=1).text in FaqEntry.objects.get(external_id="ACC-001").alt_questions
    follow = client.get(response["Location"])
    assert "修正を保存しました" in follow.content.decode()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"chosen_text": ""}, "修正後の回答を入力してください"),
        ({"faq_choice": ""}, "FAQを選ぶか"),
        ({"attr_humor": "5"}, "「ユーモア」を0〜4で評価してください"),
        ({"attr_quality": None}, "「品質」を0〜4で評価してください"),
        ({"faq_choice": "NO-SUCH"}, "FAQを選ぶか"),
    ],
)
def test_a_bad_correction_form_shows_what_is_wrong_and_saves_nothing(operator, answered, changes, message):
    response = logged_in_client(operator).post(
        f"/console/conversations/{answered.id}/messages/2/correct/", correction_post(add_phrasing="on", **changes)
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert message in page and "何も保存されていません" in page
    assert not Correction.objects.exists()
    assert FaqEntry.objects.get(external_id="ACC-001").alt_questions == ["パスワードを再設定したい"]


def test_no_faq_covers_this_is_a_choice(operator, answered):
    logged_in_client(operator).post(
        f"/console/conversations/{answered.id}/messages/2/correct/", correction_post(faq_choice="__none__")
    )
    assert Correction.objects.get().no_faq_covers


def test_a_supervisor_creates_an_faq_entry_from_the_form(supervisor, operator, answered):
    fields = correction_post(
        faq_action="create", faq_new_id="ACC-777", faq_question="ログインできない", faq_category="アカウント"
    )
    response = logged_in_client(supervisor).post(f"/console/conversations/{answered.id}/messages/2/correct/", fields)
    assert response.status_code == 302
    assert FaqEntry.objects.get(external_id="ACC-777").answer == fields["chosen_text"]
    assert Correction.objects.get().faq_external_id == "ACC-777"
    # An operator's form has no FAQ editing, and the field is ignored if posted.
    page = logged_in_client(operator).get(f"/console/conversations/{answered.id}/messages/2/correct/")
    assert b'data-testid="faq-edit"' not in page.content


def test_forms_need_the_csrf_token(operator, answered):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(f"/console/conversations/{answered.id}/messages/2/correct/", correction_post())
    assert response.status_code == 403
    assert client.post("/console/canned/", {"shortcut": "x", "title": "x", "text": "x"}).status_code == 403
    assert not Correction.objects.exists() and not CannedResponse.objects.exists()


def test_canned_responses_are_created_edited_deleted_and_audited(operator):
    client = logged_in_client(operator)
    bad = client.post("/console/canned/", {"shortcut": "Bad Key", "title": "t", "text": "x"})
    assert bad.status_code == 400 and "半角英小文字" in bad.content.decode()
    client.post("/console/canned/", {"shortcut": "thanks", "title": "お礼", "text": "ありがとうございます。"})
    canned = CannedResponse.objects.get(shortcut="thanks")
    client.post(
        f"/console/canned/{canned.pk}/", {"shortcut": "thanks", "title": "お礼", "text": "誠にありがとうございます。"}
    )
    assert CannedResponse.objects.get().text == "誠にありがとうございます。"
    page = client.get(f"/console/conversations/{conversation_with(('customer', 'x')).id}/")
    assert page.context["page_data"]["canned"] == [  # handed to the composer as JSON
        {"shortcut": "thanks", "title": "お礼", "text": "誠にありがとうございます。"}
    ]
    client.post(f"/console/canned/{canned.pk}/delete/")
    assert not CannedResponse.objects.exists()
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "canned_save",
        "canned_save",
        "canned_delete",
    ]


def test_the_audit_log_lists_who_did_what(supervisor, operator, answered):
    services.console_take_over(user=operator, conversation_id=answered.id)
    page = logged_in_client(supervisor).get("/console/audit/").content.decode()
    assert "operator1" in page and "対応開始" in page


@pytest.mark.django_db(transaction=True)
def test_knowledge_gaps_group_similar_questions_with_counts(operator):
    unconfident = {"faq": [], "cited_faq_ids": [], "confident": False, "kb_revision": 1}
    for question in (
        "明日の天気は？",
        "明日の天気を教えてください",
        "あしたの天気はどうですか",
        "領収書はもらえますか",
    ):
        conversation_with(("customer", question), ("bot", "申し訳ございません。"), **unconfident)
    thumbs = conversation_with(
        ("customer", "領収書を発行してほしい"), ("bot", "こちらです。"), confident=True, faq=[], cited_faq_ids=[]
    )
    thumbs.messages.filter(seq=2).update(feedback=-1)
    conversation_with(
        ("customer", "返品したい"), ("bot", "返品はこちらです。"), confident=True, faq=[], cited_faq_ids=[]
    )

    page = logged_in_client(operator).get("/console/gaps/")
    gaps = page.context["gaps"]
    assert [g.count for g in gaps] == [3, 2]
    assert {q.text for q in gaps[0].questions} == {
        "明日の天気は？",
        "明日の天気を教えてください",
        "あしたの天気はどうですか",
    }
    assert gaps[1].thumbs_down == 1 and gaps[1].unconfident == 1
    assert "返品したい" not in page.content.decode()

"""Console services: roles, takeover (including a real race on PostgreSQL), replies, copilot drafts,
corrections and FAQ edits made from them."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import connection

from apps.chat import operator_services
from apps.chat.models import Conversation, Message
from apps.chat.operator_services import OperatorActionRefused
from apps.chat.services import customer_message_receive
from apps.chat.texts_ja import CONVERSATION_CLOSED, OPERATOR_HANDED_BACK, OPERATOR_JOINED
from apps.console import services
from apps.console.models import AuditEntry, CopilotDraft
from apps.console.roles import OPERATORS, SUPERVISORS
from apps.faq.models import FaqEntry, KbRevision
from apps.llm.attributes import ATTRIBUTE_NAMES, BUILTIN_DEFAULTS
from apps.training.models import Correction
from apps.training.services import CorrectionInvalid
from tests.console.conftest import conversation_with

pytestmark = pytest.mark.django_db(transaction=True)

GOOD_ATTRIBUTES = dict(BUILTIN_DEFAULTS)
PASSWORD_QUESTION = "パスワード忘れちゃったんだけど"


def roles_of(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_the_roles_are_groups_made_by_migration_with_their_permissions():
    operators, supervisors = roles_of(OPERATORS), roles_of(SUPERVISORS)
    assert {"console.use_console", "console.handle_conversations", "console.correct_replies"} <= operators
    assert "console.add_cannedresponse" in operators
    assert not {"console.edit_faq", "console.view_audit_log", "console.supervise_conversations"} & operators
    assert operators < supervisors
    assert {"console.edit_faq", "console.view_audit_log", "training.view_correction"} <= supervisors


# Takeover.


def test_take_over_silences_the_bot_and_tells_the_customer(operator):
    conversation = conversation_with(("customer", "担当者と話したい"), status=Conversation.Status.WAITING_FOR_OPERATOR)
    services.console_take_over(user=operator, conversation_id=conversation.id)
    conversation.refresh_from_db()
    assert conversation.status == Conversation.Status.OPERATOR
    assert conversation.assigned_operator == operator
    assert conversation.claimed_at is not None and conversation.waiting_since is None
    last = conversation.messages.order_by("-seq").first()
    assert (last.role, last.text) == ("system", OPERATOR_JOINED)
    assert AuditEntry.objects.get().action == AuditEntry.Action.TAKE_OVER

    # The bot stays silent: a new customer message is stored and not answered.
    message, created = customer_message_receive(conversation_id=conversation.id, text="返品したいです")
    assert created
    assert not conversation.messages.filter(role="bot").exists()


def test_a_held_conversation_cannot_be_taken_by_another_operator(operator, operator2):
    conversation = conversation_with(("customer", "こんにちは"))
    services.console_take_over(user=operator, conversation_id=conversation.id)
    with pytest.raises(OperatorActionRefused) as refused:
        services.console_take_over(user=operator2, conversation_id=conversation.id)
    assert refused.value.code == "held_by_other"
    # Taking it again oneself changes nothing.
    services.console_take_over(user=operator, conversation_id=conversation.id)
    assert conversation.messages.filter(role="system").count() == 1
    assert Conversation.objects.get(id=conversation.id).assigned_operator == operator


def test_a_closed_conversation_cannot_be_taken_over(operator):
    conversation = conversation_with(("customer", "こんにちは"), status=Conversation.Status.CLOSED)
    with pytest.raises(OperatorActionRefused) as refused:
        services.console_take_over(user=operator, conversation_id=conversation.id)
    assert refused.value.code == "conversation_closed"


@pytest.mark.services
def test_two_operators_racing_for_one_conversation_on_postgresql(operator, operator2, monkeypatch):
    """Two threads, two database connections, claiming at once: exactly one wins, every time. The first claim
    is held open a moment (after its UPDATE, before commit) so the second really runs against a locked row."""
    assert connection.vendor == "postgresql", "run by bin/test with DATABASE_URL"
    append = operator_services._message_append

    def slow_append(**kwargs):
        time.sleep(0.2)
        return append(**kwargs)

    monkeypatch.setattr(operator_services, "_message_append", slow_append)

    def claim(user, conversation_id, barrier, outcomes):
        barrier.wait()
        try:
            services.console_take_over(user=user, conversation_id=conversation_id)
            outcomes[user.username] = "won"
        except OperatorActionRefused as exc:
            outcomes[user.username] = exc.code
        finally:
            connection.close()

    for _ in range(3):
        conversation = conversation_with(
            ("customer", "担当者お願いします"), status=Conversation.Status.WAITING_FOR_OPERATOR
        )
        barrier = threading.Barrier(2)
        outcomes: dict[str, str] = {}
        threads = [
            threading.Thread(target=claim, args=(u, conversation.id, barrier, outcomes)) for u in (operator, operator2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sorted(outcomes.values()) == ["held_by_other", "won"], outcomes
        winner = next(name for name, result in outcomes.items() if result == "won")
        conversation.refresh_from_db()
        assert conversation.assigned_operator.username == winner
        assert conversation.messages.filter(role="system", text=OPERATOR_JOINED).count() == 1
        assert AuditEntry.objects.filter(conversation_id=conversation.id, action="take_over").count() == 1


def test_only_the_holder_replies_hands_back_or_closes(operator, operator2):
    conversation = conversation_with(("customer", "こんにちは"))
    with pytest.raises(OperatorActionRefused):
        services.console_reply_send(user=operator, conversation_id=conversation.id, text="お待たせいたしました。")
    services.console_take_over(user=operator, conversation_id=conversation.id)
    for action in (
        lambda: services.console_reply_send(user=operator2, conversation_id=conversation.id, text="横取り"),
        lambda: services.console_hand_back(user=operator2, conversation_id=conversation.id),
        lambda: services.console_close(user=operator2, conversation_id=conversation.id),
    ):
        with pytest.raises(OperatorActionRefused):
            action()
    sent = services.console_reply_send(user=operator, conversation_id=conversation.id, text="お待たせいたしました。")
    assert sent.message.role == "operator" and sent.correction is None
    assert sent.message.provenance["operator"] == "operator1"
    assert sent.message.provenance["in_reply_to_seq"] == 1

    # A resend with the same client_msg_id is stored once.
    first = services.console_reply_send(user=operator, conversation_id=conversation.id, text="続き", client_msg_id="k")
    again = services.console_reply_send(user=operator, conversation_id=conversation.id, text="続き", client_msg_id="k")
    assert again.message == first.message
    assert conversation.messages.filter(role="operator").count() == 2
    assert AuditEntry.objects.filter(action="reply").count() == 2


def test_hand_back_lets_the_bot_answer_again(small_faq, operator):
    conversation = conversation_with(("customer", "こんにちは"))
    services.console_take_over(user=operator, conversation_id=conversation.id)
    services.console_hand_back(user=operator, conversation_id=conversation.id)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assigned_operator) == ("bot", None)
    assert conversation.messages.order_by("-seq").first().text == OPERATOR_HANDED_BACK
    # No server loop here, so the reply is generated right away.
    customer_message_receive(conversation_id=conversation.id, text=PASSWORD_QUESTION)
    assert conversation.messages.filter(role="bot").count() == 1


def test_close_ends_the_conversation_and_a_supervisor_may_close_a_held_one(operator, supervisor):
    conversation = conversation_with(("customer", "こんにちは"))
    services.console_take_over(user=operator, conversation_id=conversation.id)
    services.console_close(user=supervisor, conversation_id=conversation.id)
    conversation.refresh_from_db()
    assert conversation.status == "closed"
    assert conversation.messages.order_by("-seq").first().text == CONVERSATION_CLOSED
    assert list(AuditEntry.objects.order_by("id").values_list("action", "actor_name")) == [
        ("take_over", "operator1"),
        ("close", "supervisor1"),
    ]


def test_a_user_without_a_role_can_do_nothing(outsider):
    conversation = conversation_with(("customer", "こんにちは"))
    for action in (
        lambda: services.console_take_over(user=outsider, conversation_id=conversation.id),
        lambda: services.console_close(user=outsider, conversation_id=conversation.id),
        lambda: services.faq_phrasing_add(user=outsider, faq_external_id="ACC-001", phrasing="x"),
    ):
        with pytest.raises(PermissionDenied):
            action()
    assert Conversation.objects.get(id=conversation.id).status == "bot"
    assert not AuditEntry.objects.exists()


# Copilot.


def test_a_copilot_draft_is_generated_without_a_bot_message_and_the_sent_pair_is_a_correction(small_faq, operator):
    conversation = conversation_with(("customer", PASSWORD_QUESTION), status=Conversation.Status.WAITING_FOR_OPERATOR)
    services.console_take_over(user=operator, conversation_id=conversation.id)
    draft, to_generate = services.copilot_draft_request(user=operator, conversation_id=conversation.id)
    assert draft is None and to_generate == conversation.messages.get(seq=1).id

    draft = services.copilot_draft_generate(customer_message_id=to_generate)
    assert "再設定用のメール" in draft.text
    assert draft.provenance["cited_faq_ids"] == ["ACC-001"]
    assert not conversation.messages.filter(role="bot").exists(), "a draft is never shown to the customer"
    assert services.copilot_draft_request(user=operator, conversation_id=conversation.id) == (draft, None)

    sent_text = "お問い合わせありがとうございます。ログイン画面の「パスワードをお忘れの方」から再設定いただけます。"
    sent = services.console_reply_send(
        user=operator, conversation_id=conversation.id, text=sent_text, draft_id=draft.id
    )
    correction = sent.correction
    assert correction.kind == Correction.Kind.COPILOT_EDIT
    assert (correction.rejected_text, correction.chosen_text) == (draft.text, sent_text)
    assert correction.reply_message == sent.message
    assert correction.customer_message.seq == 1
    assert correction.faq_external_id == "ACC-001" and not correction.no_faq_covers
    assert correction.backend == "template" and correction.kb_revision == draft.provenance["kb_revision"]
    assert correction.context["turns"][-1]["content"] == PASSWORD_QUESTION
    assert sent.message.provenance["draft_id"] == draft.id
    assert AuditEntry.objects.filter(action="copilot_edit").count() == 1


def test_a_draft_for_a_conversation_nobody_holds_is_not_made(small_faq, operator):
    conversation = conversation_with(("customer", PASSWORD_QUESTION))
    with pytest.raises(OperatorActionRefused):
        services.copilot_draft_request(user=operator, conversation_id=conversation.id)
    assert services.copilot_draft_generate(customer_message_id=conversation.messages.get().id) is None
    assert not CopilotDraft.objects.exists()


def test_a_send_whose_copilot_record_is_refused_sends_nothing(small_faq, operator):
    conversation = conversation_with(("customer", PASSWORD_QUESTION))
    services.console_take_over(user=operator, conversation_id=conversation.id)
    draft = services.copilot_draft_generate(customer_message_id=conversation.messages.get(seq=1).id)
    with pytest.raises(CorrectionInvalid):
        services.console_reply_send(
            user=operator, conversation_id=conversation.id, text="こちらです", draft_id=draft.id, faq_external_id="NOPE"
        )
    assert not conversation.messages.filter(role="operator").exists()
    assert not Correction.objects.exists()


# Corrections.


@pytest.fixture
def answered(faq_entries):
    """A conversation where the bot answered the password question from ACC-001 (provenance as the pipeline
    writes it; no search index needed)."""
    conversation = conversation_with(
        ("customer", "ログインのパスワードが思い出せない"),
        ("bot", "パスワードの再設定は、ログイン画面の「パスワードをお忘れの方」から行えます。"),
        faq=[{"id": "ACC-001", "question": faq_entries[0].question, "score": 0.83, "sparse": 0.5, "dense": 0.86}],
        cited_faq_ids=["ACC-001"],
        confident=True,
        kb_revision=1,
        backend="template",
        model_id="template-v1",
    )
    return conversation.messages.get(seq=2)


def test_a_correction_is_stored_and_the_question_becomes_a_phrasing(answered, operator):
    revisions = KbRevision.objects.count()
    correction = services.correction_submit(
        user=operator,
        reply_message=answered,
        chosen_text="パスワードはログイン画面の「パスワードをお忘れの方」から再設定いただけます。",
        faq_external_id="ACC-001",
        attributes={**GOOD_ATTRIBUTES, "verbosity": 2},
        reason_tags=["冗長"],
        add_phrasing=True,
    )
    assert correction.kind == "correction" and correction.rejected_text == answered.text
    assert correction.attributes["verbosity"] == 2 and list(correction.attributes) == list(ATTRIBUTE_NAMES)
    assert correction.reason_tags == ["冗長"]
    entry = FaqEntry.objects.get(external_id="ACC-001")
    assert "ログインのパスワードが思い出せない" in entry.alt_questions
    assert KbRevision.objects.count() == revisions + 1
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == ["correction", "faq_phrasing"]

    # The same question again adds nothing.
    services.faq_phrasing_add(user=operator, faq_external_id="ACC-001", phrasing="ログインのパスワードが思い出せない")
    assert KbRevision.objects.count() == revisions + 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"chosen_text": "   "}, "chosen_text"),
        ({"faq_external_id": "", "no_faq_covers": False}, "faq_external_id"),
        ({"faq_external_id": "ACC-001", "no_faq_covers": True}, "faq_external_id"),
        ({"faq_external_id": "NO-SUCH"}, "faq_external_id"),
        ({"attributes": {**GOOD_ATTRIBUTES, "humor": 5}}, "attributes"),
        ({"attributes": {**GOOD_ATTRIBUTES, "humor": -1}}, "attributes"),
        ({"attributes": {**GOOD_ATTRIBUTES, "humor": 1.5}}, "attributes"),
        ({"attributes": {k: v for k, v in GOOD_ATTRIBUTES.items() if k != "quality"}}, "attributes"),
        ({"attributes": {**GOOD_ATTRIBUTES, "politeness": 3}}, "attributes"),
        ({"reason_tags": [""]}, "reason_tags"),
    ],
)
def test_a_bad_correction_is_refused_and_nothing_is_saved(answered, supervisor, changes, field):
    faq_before = list(FaqEntry.objects.order_by("id").values_list("external_id", "alt_questions", "answer"))
    revisions = KbRevision.objects.count()
    arguments = {
        "user": supervisor,
        "reply_message": answered,
        "chosen_text": "正しい回答です。",
        "faq_external_id": "ACC-001",
        "attributes": GOOD_ATTRIBUTES,
        "add_phrasing": True,
        **changes,
    }
    with pytest.raises(CorrectionInvalid) as refused:
        services.correction_submit(**arguments)
    assert field in refused.value.errors
    assert not Correction.objects.exists()
    assert not AuditEntry.objects.exists()
    assert list(FaqEntry.objects.order_by("id").values_list("external_id", "alt_questions", "answer")) == faq_before
    assert KbRevision.objects.count() == revisions


def test_a_bad_correction_with_a_new_faq_creates_no_faq(answered, supervisor):
    with pytest.raises(CorrectionInvalid):
        services.correction_submit(
            user=supervisor,
            reply_message=answered,
            chosen_text="正しい回答です。",
            attributes={**GOOD_ATTRIBUTES, "quality": 9},
            faq_edit=services.FaqEdit(action="create", external_id="NEW-1", question="質問", answer="回答です。"),
        )
    assert not FaqEntry.objects.filter(external_id="NEW-1").exists()


def test_a_supervisor_creates_an_faq_entry_from_a_correction_in_one_step(answered, supervisor):
    correction = services.correction_submit(
        user=supervisor,
        reply_message=answered,
        chosen_text="二段階認証の解除はサポート窓口で承ります。",
        attributes=GOOD_ATTRIBUTES,
        faq_edit=services.FaqEdit(
            action="create",
            external_id="ACC-900",
            question="二段階認証を解除したい",
            answer="二段階認証の解除はサポート窓口で承ります。",
            category="アカウント",
        ),
    )
    entry = FaqEntry.objects.get(external_id="ACC-900")
    assert (entry.question, entry.category, entry.revision) == ("二段階認証を解除したい", "アカウント", entry.revision)
    assert correction.faq_external_id == "ACC-900"
    assert set(AuditEntry.objects.values_list("action", flat=True)) == {"faq_create", "correction"}


def test_a_supervisor_updates_the_picked_faq_answer(answered, supervisor):
    services.correction_submit(
        user=supervisor,
        reply_message=answered,
        chosen_text="ログイン画面から再設定いただけます。",
        faq_external_id="ACC-001",
        attributes=GOOD_ATTRIBUTES,
        faq_edit=services.FaqEdit(action="update", external_id="ACC-001", answer="新しい回答です。"),
    )
    assert FaqEntry.objects.get(external_id="ACC-001").answer == "新しい回答です。"


def test_an_operator_cannot_edit_the_faq(answered, operator):
    with pytest.raises(PermissionDenied):
        services.correction_submit(
            user=operator,
            reply_message=answered,
            chosen_text="x",
            attributes=GOOD_ATTRIBUTES,
            faq_edit=services.FaqEdit(action="create", external_id="X-1", question="q", answer="a"),
        )
    assert not Correction.objects.exists()


def test_only_bot_replies_can_be_corrected(answered, operator):
    customer = Message.objects.get(conversation_id=answered.conversation_id, seq=1)
    with pytest.raises(CorrectionInvalid):
        services.correction_submit(
            user=operator,
            reply_message=customer,
            chosen_text="x",
            faq_external_id="ACC-001",
            attributes=GOOD_ATTRIBUTES,
        )

"""The reply pipeline's handling of backend faults and failed checks.

The backends here are fault injectors written for these tests (a crash, an empty stream, a reply that breaks
the style rules), standing in for a real model misbehaving; the real backends have their own tests.
"""

from __future__ import annotations

import pytest

from apps.chat import pipeline, services
from apps.chat.models import Message
from apps.llm.texts_ja import FALLBACK_APOLOGY, OFFER_PERSON

pytestmark = pytest.mark.django_db(transaction=True)


class CrashingBackend:
    name, model_id = "crashing", "fault-injector"

    def stream(self, request):
        yield "途中まで"
        raise RuntimeError("device lost")


class EmptyBackend:
    name, model_id = "empty", "fault-injector"

    def stream(self, request):
        return iter(())


class RudeBackend:
    name, model_id = "rude", "fault-injector"

    def stream(self, request):
        yield "拝啓　パスワードは再設定できる。敬具"


@pytest.mark.parametrize(("backend", "reason"), [(CrashingBackend(), "device lost"), (EmptyBackend(), "empty output")])
def test_a_failing_backend_still_gives_a_safe_faq_reply(small_faq, monkeypatch, backend, reason):
    monkeypatch.setattr(pipeline, "get_backend", lambda: backend)
    conversation = services.conversation_create()
    message, _ = services.customer_message_receive(conversation_id=conversation.id, text="パスワードを忘れた")
    reply = Message.objects.get(in_reply_to=message)
    assert reply.text.startswith(FALLBACK_APOLOGY)
    assert "再設定用のメール" in reply.text and OFFER_PERSON in reply.text
    assert reply.provenance["fallback"] is True
    assert reason in reply.provenance["checks"]["failures"][0]["reason"]
    assert Message.objects.filter(role="customer").count() == 1, "the customer's message is kept"


def test_a_reply_that_fails_the_checks_is_replaced(small_faq, monkeypatch):
    monkeypatch.setattr(pipeline, "get_backend", lambda: RudeBackend())
    conversation = services.conversation_create()
    message, _ = services.customer_message_receive(conversation_id=conversation.id, text="パスワードを忘れた")
    reply = Message.objects.get(in_reply_to=message)
    assert "拝啓" not in reply.text
    assert reply.provenance["fallback"] is True
    assert reply.provenance["checks"]["failures"]


def test_the_template_reply_passes_its_own_checks(small_faq):
    conversation = services.conversation_create()
    message, _ = services.customer_message_receive(conversation_id=conversation.id, text="返品できる？")
    reply = Message.objects.get(in_reply_to=message)
    assert reply.provenance["checks"] == {"passed": True, "failures": []}
    assert reply.provenance["fallback"] is False


def test_the_first_reply_thanks_the_customer_and_later_ones_do_not(small_faq):
    conversation = services.conversation_create()
    first, _ = services.customer_message_receive(conversation_id=conversation.id, text="返品できる？")
    second, _ = services.customer_message_receive(conversation_id=conversation.id, text="支払い方法は？")
    replies = [Message.objects.get(in_reply_to=m).text for m in (first, second)]
    assert replies[0].startswith("お問い合わせありがとうございます。")
    assert not replies[1].startswith("お問い合わせありがとうございます。")


def test_history_turns_alternate_and_end_with_the_question(small_faq):
    conversation = services.conversation_create()
    services.conversation_request_operator(conversation_id=conversation.id)
    a, _ = services.customer_message_receive(conversation_id=conversation.id, text="一つ目")
    b, _ = services.customer_message_receive(conversation_id=conversation.id, text="二つ目")
    search = pipeline.faq_search(b.text)
    request = pipeline.reply_request_build(customer_message=b, search=search)
    assert [t.role for t in request.turns] == ["user"]
    assert request.turns[-1].content == "一つ目\n二つ目"


def test_a_backend_that_cannot_start_still_gives_a_safe_reply(small_faq, monkeypatch):
    from apps.llm.errors import BackendUnavailable

    def unavailable():
        raise BackendUnavailable("transformers-neuronx is not installed")

    monkeypatch.setattr(pipeline, "get_backend", unavailable)
    conversation = services.conversation_create()
    message, _ = services.customer_message_receive(conversation_id=conversation.id, text="パスワードを忘れた")
    reply = Message.objects.get(in_reply_to=message)
    assert reply.text.startswith(FALLBACK_APOLOGY)
    failure = reply.provenance["checks"]["failures"][0]
    assert failure["kind"] == "unavailable" and "transformers-neuronx" in failure["reason"]

"""Test data for the training app: conversations with a bot reply, corrections made through `correction_create`
(the console's one write path), examples approved through the review service."""

from __future__ import annotations

import itertools

from django.contrib.auth.models import Group, User

from apps.chat.models import Conversation, Message
from apps.faq.models import FaqEntry
from apps.faq.services import FaqRow, faq_entries_upsert
from apps.llm.attributes import BUILTIN_DEFAULTS
from apps.training.models import TrainingExample
from apps.training.services import correction_create, example_decide

FAQ_ROWS = [
    FaqRow(
        external_id="DLV-001",
        question="注文した商品はいつ届きますか？",
        answer="ご注文から通常2〜4日でお届けいたします。発送後にお送りするメールから配送状況をご確認いただけます。",
        category="配送",
    ),
    FaqRow(
        external_id="RET-001",
        question="商品を返品できますか？",
        answer="商品到着から8日以内であれば、マイページの「注文履歴」から返品をお申し込みいただけます。",
        category="返品・交換",
    ),
]
ATTRIBUTES = {**BUILTIN_DEFAULTS, "verbosity": 2, "complexity": 1}
_names = itertools.count(1)


def faq_entries() -> None:
    """The two FAQ entries corrections point at (stored; never indexed: nothing here searches)."""
    if not FaqEntry.objects.filter(external_id="DLV-001").exists():
        faq_entries_upsert(rows=FAQ_ROWS, actor="test")


def user_in(group: str | None, username: str | None = None) -> User:
    # No password: hashing one costs a third of a second, and tests sign in with force_login.
    user = User.objects.create_user(username=username or f"user{next(_names)}")
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def supervisor(username: str | None = None) -> User:
    return user_in("supervisors", username)


def conversation_with_reply(
    question: str = "注文した商品がまだ届きません。いつ届きますか？",
    reply: str = "お問い合わせありがとうございます。通常2〜4日でお届けします。",
    *,
    history: tuple[tuple[str, str], ...] = (),
) -> tuple[Message, Message]:
    """A conversation ending with a customer message and the bot's reply to it; returns (customer, bot)."""
    conversation = Conversation.objects.create(channel="http")
    seq = 0
    customer = None

    def add(role: str, text: str, **extra) -> Message:
        nonlocal seq
        seq += 1
        return Message.objects.create(conversation=conversation, seq=seq, role=role, text=text, **extra)

    for role, text in history:
        add(role, text)
    customer = add(Message.Role.CUSTOMER, question)
    bot = add(
        Message.Role.BOT,
        reply,
        in_reply_to=customer,
        provenance={
            "faq": [{"id": "DLV-001", "question": FAQ_ROWS[0].question, "score": 0.91}],
            "confident": True,
            "kb_revision": 1,
            "backend": "template",
            "model_id": "karakuri-lm-test",
        },
    )
    Conversation.objects.filter(id=conversation.id).update(last_seq=seq)
    return customer, bot


def correction(
    *,
    operator: User,
    question: str = "注文した商品がまだ届きません。いつ届きますか？",
    rejected: str = "お問い合わせありがとうございます。通常2〜4日でお届けします。",
    chosen: str = "ご不便をおかけしております。ご注文から通常2〜4日でお届けいたします。",
    customer_message: Message | None = None,
    attributes: dict | None = None,
):
    """A correction of a bot reply, made the way the console makes it."""
    faq_entries()
    if customer_message is None:
        customer_message, bot = conversation_with_reply(question, rejected)
    else:
        bot = Message.objects.filter(in_reply_to=customer_message, role=Message.Role.BOT).first()
    return correction_create(
        operator=operator,
        customer_message=customer_message,
        reply_message=bot,
        rejected_text=rejected,
        chosen_text=chosen,
        faq_external_id="DLV-001",
        attributes=attributes or ATTRIBUTES,
        reason_tags=["敬語"],
    )


def approved_example(*, operator: User, reviewer: User, **kwargs) -> TrainingExample:
    example = correction(operator=operator, **kwargs).example
    return example_decide(example_id=example.id, actor=reviewer, action="approve", revision=example.revision)

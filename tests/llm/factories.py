"""Reply requests and FAQ entries for the llm tests."""

from __future__ import annotations

import json
from collections.abc import Sequence

from apps.llm.testing import DEMO_FAQ
from apps.llm.types import ChatTurn, FaqContext, ReplyRequest

_SAMPLE_FAQ = [
    FaqContext(
        faq_id="ACC-001",
        question="パスワードを忘れてしまいました。どうすれば再設定できますか。",
        answer="ログイン画面の「パスワードをお忘れの方」から再設定いただけます。\n"
        "1. ご登録のメールアドレスを入力し、「送信」を押してください。\n"
        "2. 届いたメールのリンクから新しいパスワードを設定してください。",
        score=0.9,
    ),
    FaqContext(
        faq_id="SHP-001",
        question="送料はいくらですか。",
        answer="送料は全国一律550円（税込）です。5,000円以上のご注文で送料無料となります。",
        score=0.6,
    ),
    FaqContext(
        faq_id="PAY-001",
        question="支払い方法を教えてください。",
        answer="クレジットカード、コンビニ払い、銀行振込からお選びいただけます。",
        score=0.3,
    ),
]


def demo_faq() -> list[FaqContext]:
    """The demo FAQ entries (scores descending from 0.9), or three sample entries when the file is absent."""
    if not DEMO_FAQ.exists():
        return list(_SAMPLE_FAQ)
    entries = []
    for index, line in enumerate(DEMO_FAQ.read_text(encoding="utf-8").splitlines()):
        if line.strip():
            raw = json.loads(line)
            entries.append(
                FaqContext(
                    faq_id=raw["id"],
                    question=raw["question"],
                    answer=raw["answer"],
                    score=round(0.9 - index * 0.005, 4),
                )
            )
    return entries


def sample_faq() -> list[FaqContext]:
    return list(_SAMPLE_FAQ)


def reply_request(
    question: str = "パスワードを忘れました。",
    *,
    history: Sequence[tuple[str, str]] = (),
    faq: Sequence[FaqContext] | None = None,
    confident: bool = True,
    is_first_reply: bool | None = None,
    attributes: dict | None = None,
) -> ReplyRequest:
    """A request answering `question` after `history` ((role, text) pairs, oldest first)."""
    turns = tuple(ChatTurn(role=role, content=text) for role, text in history) + (ChatTurn("user", question),)
    return ReplyRequest(
        turns=turns,
        faq=tuple(sample_faq() if faq is None else faq),
        confident=confident,
        is_first_reply=not history if is_first_reply is None else is_first_reply,
        attributes=attributes,
    )


def long_history(pairs: int) -> list[tuple[str, str]]:
    history = []
    for i in range(pairs):
        history.append(("user", f"{i}番目の質問です。注文した商品の配送状況について教えてください。"))
        history.append(("assistant", f"{i}番目の回答です。マイページの注文履歴から配送状況をご確認いただけます。"))
    return history

import pytest

from apps.llm.backends.template import TemplateBackend, fallback_reply_text, template_reply_text
from apps.llm.checks import CheckResult, facts, plain_ending, reply_check
from tests.llm.factories import demo_faq, reply_request, sample_faq

SHIPPING_FAQ = sample_faq()[1].__class__(
    faq_id="SHP-001",
    question="送料はいくらですか。",
    answer=(
        "送料は全国一律550円（税込）です。5,000円以上のご注文で送料無料となります。"
        "詳しくは https://example.com/help/shipping をご覧ください。"
        "お電話（0120-123-456、平日9:00〜18:00）またはsupport@example.comでも承ります。"
        "年末年始（12月29日〜1月3日）はお休みです。"
    ),
    score=0.9,
)

GOOD = [
    "送料は全国一律550円（税込）です。5,000円以上のご注文で送料無料となります。",
    "お問い合わせありがとうございます。送料についてご案内いたします。",
    "恐れ入りますが、マイページの注文履歴からご確認ください。",
    "申し訳ございません。こちらでは確かなご案内ができませんでした。担当者におつなぎいたしましょうか。",
    "承知いたしました。確認いたしますので、少々お待ちくださいませ。",
    "詳しくは https://example.com/help/shipping をご覧ください。",
    "https://example.com/help でもご確認いただけます。",
    "お電話（0120-123-456）でも承ります。受付は平日9時から18時までです。",
    "年末年始（12月29日〜1月3日）はお休みをいただいております。",
    "ご不明な点はございますか？",
    "以下の手順でお手続きください。\n1. ログイン画面を開く\n2. 「送信」を押す",
    "ほかにご不明な点がございましたら、お気軽にお尋ねください。",
]

BAD = [
    ("手続きできる。", "keigo"),
    ("送料は無料だよ。", "keigo"),
    ("確認した。", "keigo"),
    ("ありがとう。送料は550円です。", "keigo"),
    ("送料は550円。便利だね！", "keigo"),
    ("拝啓 送料は550円です。敬具", "letter_style"),
    ("時下ますますご清栄のこととお慶び申し上げます。送料は550円です。", "letter_style"),
    ("親愛なるお客様、送料は550円です。", "translated_phrase"),
    ("山田様へ、送料は550円です。", "translated_phrase"),
    ("送料は550円です。よろしくお願いします！", "translated_phrase"),
    ("送料は550円です。幸運を祈ります。", "translated_phrase"),
    ("先ほどおっしゃられた件ですが、送料は550円です。", "double_honorific"),
    ("確認させていただき、ご案内させていただき、対応させていただきます。", "double_honorific"),
    ("了解しました。送料は550円です。", "ryokai"),
    ("送料は550円です😊", "emoji_slang"),
    ("送料は550円っす。", "emoji_slang"),
    ("マジで送料は550円です。", "emoji_slang"),
    ("送料は600円です。", "grounding"),
    ("送料は1万円以上で無料です。", "grounding"),
    ("詳しくは https://example.com/help/shipping/campaign をご覧ください。", "grounding"),
    ("https://example.org/help をご覧ください。", "grounding"),
    ("03-1234-5678までお電話ください。", "grounding"),
    ("info@example.com までご連絡ください。", "grounding"),
    ("12月28日からお休みです。", "grounding"),
    ("2025年12月29日からお休みです。", "grounding"),
    ("受付は平日10:00から17:00までです。", "grounding"),
    ("送料は550円です。" * 60, "length"),
    ("送料は550円です\ufffd\ufffd", "garbled"),
    ("   ", "empty"),
]


def _shipping_request(question: str = "送料はいくらですか"):
    return reply_request(question, faq=[SHIPPING_FAQ])


@pytest.mark.parametrize("reply", GOOD)
def test_it_passes_good_replies(reply):
    result = reply_check(reply, _shipping_request())
    assert result.ok, result.failures


@pytest.mark.parametrize(("reply", "check"), BAD)
def test_it_fails_bad_replies_with_the_right_check(reply, check):
    result = reply_check(reply, _shipping_request())
    assert not result.ok
    assert check in {f["check"] for f in result.failures}, result.failures
    assert all(f["reason"] for f in result.failures)


def test_the_conversation_grounds_facts_too():
    request = reply_request("注文番号は0312345678です。電話は03-9876-5432です。", faq=[SHIPPING_FAQ])
    assert reply_check("03-9876-5432に折り返しお電話いたします。", request).ok


def test_the_template_backends_replies_pass_for_every_demo_faq():
    for entry in demo_faq():
        for first in (True, False):
            request = reply_request(entry.question, faq=[entry], is_first_reply=first)
            for text in (template_reply_text(request), fallback_reply_text(request)):
                result = reply_check(text, request)
                assert result.ok, (entry.faq_id, result.failures)
    not_found = reply_request("宇宙旅行の予約はできますか", confident=False, faq=[])
    assert reply_check("".join(TemplateBackend().stream(not_found)), not_found).ok


@pytest.mark.parametrize(
    ("sentence", "ending"),
    [
        ("ご確認ください。", None),
        ("ございません。", None),
        ("いかがでしょうか？", None),
        ("参考：よくあるご質問", None),
        ("手続きできる。", "手続きできる"),
        ("便利だよ。", "便利だ"),
    ],
)
def test_it_finds_the_final_predicate(sentence, ending):
    assert plain_ending(sentence) == ending


def test_it_extracts_and_normalises_facts():
    found = {
        (f.kind, f.key)
        for f in facts("１万２,０００円、¥3,000、+81-3-1234-5678、2025年1月5日、2025/01/05、10時半、24時間")
    }
    assert found == {
        ("price", "12000"),
        ("price", "3000"),
        ("phone", "0312345678"),
        ("date", "2025-1-5"),
        ("time", "10:30"),
    }


def test_a_result_without_failures_is_ok():
    assert CheckResult().ok
    assert not CheckResult([{"check": "keigo", "reason": "x"}]).ok
    assert CheckResult().as_dict() == {"passed": True, "failures": []}

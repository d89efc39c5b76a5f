"""Japanese normalisation shared by indexing and querying."""

import pytest

from apps.faq import text
from apps.faq.text import NEGATION, text_normalize, text_tokens


def test_it_normalises_full_and_half_width_alike():
    assert text_tokens("ﾊﾟｽﾜｰﾄﾞ") == text_tokens("パスワード") == ["パスワード"]
    assert text_normalize("ＡＢＣ１２３　ｘｙｚ") == text_normalize("abc123 XYZ") == "abc123 xyz"


def test_it_normalises_spelling_variants_to_one_term():
    # 送り仮名 variants and kanji/kana spellings share Sudachi's normalised form.
    assert text_tokens("申込み") == text_tokens("申し込み") == text_tokens("申込")
    assert text_tokens("引き落とし") == text_tokens("引落し") == text_tokens("引落")
    assert text_tokens("問い合わせ") == text_tokens("問合せ")


def test_it_maps_customer_shorthand_to_the_faq_word():
    assert text_tokens("クレカ") == ["クレジットカード"]
    assert text_tokens("メアド変えたい")[0] == "メールアドレス"
    assert text_tokens("PWリセット")[0] == "パスワード"


def test_it_keeps_product_names_whole_with_the_user_dictionary():
    assert text_tokens("ミドリプレミアム") == ["みどりプレミアム"]
    assert text_tokens("ﾐﾄﾞﾘﾎﾟｲﾝﾄを使いたい") == ["みどりポイント", "使う"]
    assert "みどりプレミアム" in text_tokens("みどりプレミアムを解約したい")


def test_negation_survives_stop_wording():
    negative = text_tokens("ログインできません")
    positive = text_tokens("ログインできます")
    assert NEGATION in negative and "出来る~ない" in negative
    assert NEGATION not in positive
    assert NEGATION in text_tokens("荷物が届かない")
    assert NEGATION in text_tokens("領収書がない")
    assert NEGATION in text_tokens("ﾛｸﾞｲﾝ出来ん")


def test_it_drops_filler_words():
    assert text_tokens("教えてください。どうすればいいですか？") == []
    assert text_tokens("返品の方法を教えてください") == ["返品"]


def test_it_splits_compound_nouns_into_short_units_too():
    terms = text_tokens("配送料金")
    assert "配送料金" in terms and "配送" in terms and "料金" in terms


@pytest.mark.parametrize(
    "odd",
    ["", "   ", "😀🎉🙏", "!!!???…", "a" * 10_000, "あ" * 30_000, "\x00\x01ログイン\x7f\u200b", "Where is my order?"],
)
def test_it_never_raises_on_odd_text(odd):
    assert isinstance(text_tokens(odd), list)
    assert "\x00" not in text_normalize(odd)


def test_it_works_without_a_user_dictionary(settings):
    settings.FAQ_USER_DICT = ""
    text.reset_for_tests()
    try:
        assert text_tokens("ミドリプレミアム") != ["みどりプレミアム"]
    finally:
        settings.FAQ_USER_DICT = str(text.DEFAULT_USER_DICT)
        text.reset_for_tests()

"""Personal data masking: property tests (hypothesis) and the cases that matter in Japanese support chats."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from apps.training.masking import Masker
from apps.training.texts_ja import MASK_PLACEHOLDERS

masker = Masker()

# Surrounding text: Japanese and punctuation with no digits, letters, @, hyphens or honorific, so where a
# personal datum starts and ends is unambiguous.
_PLAIN = "あいうえおかきくけこさしすせそたちつてとなにぬねのはまやらわをんがぎぐ、。！？「」（） \n"
plain = st.text(alphabet=_PLAIN, max_size=30)
_FULLWIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


def maybe_fullwidth(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(strategy, st.booleans()).map(lambda p: p[0].translate(_FULLWIDTH) if p[1] else p[0])


mobile = st.tuples(st.sampled_from(["090", "080", "070"]), digits(4), digits(4), st.sampled_from(["-", " ", ""]))
landline = st.tuples(st.sampled_from(["03", "06", "011"]), digits(4), digits(4), st.sampled_from(["-", ""]))
phones = maybe_fullwidth(st.one_of(mobile, landline).map(lambda p: p[3].join(p[:3])))
cards = maybe_fullwidth(
    st.tuples(digits(4), digits(4), digits(4), digits(4), st.sampled_from(["-", " ", ""])).map(
        lambda p: p[4].join(p[:4])
    )
)
my_numbers = maybe_fullwidth(
    st.tuples(digits(4), digits(4), digits(4), st.sampled_from([" ", "-", ""])).map(lambda p: p[3].join(p[:3]))
)
postal = maybe_fullwidth(
    st.tuples(digits(3), digits(4), st.sampled_from(["〒", ""])).map(lambda p: f"{p[2]}{p[0]}-{p[1]}")
)
emails = st.emails().filter(lambda e: len(e) < 80)
names = st.sampled_from(["山田", "佐藤太郎", "鈴木花子", "高橋", "田中一郎", "ヤマダ", "ワタナベ"]).map(lambda n: n)

KINDS = {"phone": phones, "card": cards, "my_number": my_numbers, "postal": postal, "email": emails}


@pytest.mark.parametrize("kind", sorted(KINDS))
@settings(max_examples=150, deadline=None)
@given(data=st.data(), before=plain, after=plain)
def test_a_masked_text_never_contains_the_original(kind, data, before, after):
    value = data.draw(KINDS[kind])
    masked = masker.mask(before + value + after)
    assert value not in masked
    # Only the datum changed, and into its kind's placeholder.
    assert masked == before + MASK_PLACEHOLDERS[kind] + after
    if kind != "email":
        assert not re.search(r"[0-9０-９]", masked)


@settings(max_examples=150, deadline=None)
@given(name=names, before=plain, after=plain, honorific=st.sampled_from(["様", "さま"]))
@example(name="山田", before="", after="さま", honorific="様")  # 山田様さま: the name is 山田, 様 stays
def test_a_name_before_sama_is_masked_and_the_honorific_kept(name, before, after, honorific):
    masked = masker.mask(before + name + honorific + after)
    assert name not in masked
    assert masked == before + MASK_PLACEHOLDERS["name"] + honorific + after


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_categories=["Cs", "Nd"], blacklist_characters="@様さ")))
@example("お客様、皆様、様々なご質問に同様にお答えします。")
@example("ご担当者様、ユーザー様へ")
def test_text_without_personal_data_is_unchanged(text):
    assert masker.mask(text) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=_PLAIN + "0123456789０１２３４５６７８９-－@.様山田ab", max_size=80))
def test_masking_twice_changes_nothing_more(text):
    once = masker.mask(text)
    assert masker.mask(once) == once


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("山田太郎様のお電話番号は090-1234-5678です。", "［氏名］様のお電話番号は［電話番号］です。"),
        ("ご連絡先：taro.yamada@example.co.jp", "ご連絡先：［メールアドレス］"),
        ("〒150-0001 東京都渋谷区", "［郵便番号］ 東京都渋谷区"),
        ("カード番号 4111-1111-1111-1111", "カード番号 ［カード番号］"),
        ("個人番号は123456789012です", "個人番号は［個人番号］です"),
        ("０３－１２３４－５６７８までお電話ください", "［電話番号］までお電話ください"),
        ("+81-90-1234-5678", "［電話番号］"),
        ("(03)1234-5678、03(1234)5678、（0120）123-456", "［電話番号］、［電話番号］、［電話番号］"),
        ("090-1234-5678 03-1234-5678", "［電話番号］ ［電話番号］"),
        ("注文番号 123456 は 2024-01-15 10:30 に発送しました", "注文番号 123456 は 2024-01-15 10:30 に発送しました"),
        ("送料は550円、5,000円以上で無料です", "送料は550円、5,000円以上で無料です"),
        ("お客様、ご担当者様、同様に、様子を見ます", "お客様、ご担当者様、同様に、様子を見ます"),
    ],
)
def test_it_masks_what_support_chats_contain(text, expected):
    assert Masker().mask(text) == expected


def test_only_the_configured_kinds_are_masked():
    only_email = Masker(kinds=("email",))
    assert only_email.mask("山田様 a@example.com 090-1234-5678") == "山田様 ［メールアドレス］ 090-1234-5678"
    assert Masker(kinds=()).mask("a@example.com") == "a@example.com"


def test_allowed_strings_are_never_masked_in_any_width():
    company = Masker(allow=["0120-123-456", "support@example.com"])
    text = "フリーダイヤル０１２０－１２３－４５６、support@example.com、お客様の090-1234-5678"
    assert company.mask(text) == "フリーダイヤル０１２０－１２３－４５６、support@example.com、お客様の［電話番号］"


def test_it_counts_what_it_masked():
    counting = Masker()
    counting.mask("山田様 090-1234-5678")
    counting.mask_repeated("a@example.com")
    counting.mask_repeated("a@example.com")
    assert counting.counts == {"name": 1, "phone": 1, "email": 2}


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="passport"):
        Masker(kinds=("passport",))

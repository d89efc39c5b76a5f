"""Personal data masked out of exported training text.

Looked for, in this order (an earlier kind wins where two overlap): e-mail addresses, card-like numbers (13 to
19 digits), 12-digit My Number, Japanese phone numbers, postal codes (〒 or NNN-NNNN), street addresses down to
their block number, and names: written as 〇〇様 / 〇〇さま, or found by their context with SudachiPy (田中です,
森と申します, 名前は…; see below).
Digits, letters and hyphens are matched in full width too (０９０－…): the patterns run on a copy where those
are folded to ASCII one character for one, so every match maps back to the original text exactly, and only the
matched characters change. A name keeps its honorific or context: 山田様 → ［氏名］様, 田中です → ［氏名］です.

Which kinds are masked, and literal strings never masked (the company's own support number), come from
TRAINING_PII_KINDS and TRAINING_PII_ALLOW. Over-masking is preferred to a leak: a 13-digit order number is
masked as card-like.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from apps.faq.text import text_morphemes
from apps.training.config import PII_KINDS
from apps.training.texts_ja import MASK_PLACEHOLDERS

_HYPHENS = "‐‑‒–—―−－ー─━ｰ﹣"
_FOLD = str.maketrans(
    {
        **{chr(0xFF10 + i): str(i) for i in range(10)},
        **{chr(0xFF21 + i): chr(0x41 + i) for i in range(26)},
        **{chr(0xFF41 + i): chr(0x61 + i) for i in range(26)},
        **dict.fromkeys(_HYPHENS, "-"),
        "＠": "@",
        "．": ".",
        "＋": "+",
        "＿": "_",
        "％": "%",
        "（": "(",
        "）": ")",
        "\u3000": " ",
    }
)

# A street address down to its block number: a prefecture and/or municipalities (市 区 町 村 郡), the town, then
# numbers (2-8-1, １丁目２番３号, 123番地, 三丁目), and a building or room number right after (メゾン梅田101号室).
# Without a block number it is not masked: 東京都 or 横浜市中区 alone is a region, not a person's address. Runs on
# the folded copy, where ー in katakana reads as "-".
_PREFECTURE = (
    "北海道|東京都|京都府|大阪府|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|"
    "神奈川県|新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|滋賀県|兵庫県|奈良県|和歌山県|"
    "鳥取県|島根県|岡山県|広島県|山口県|徳島県|香川県|愛媛県|高知県|福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|"
    "鹿児島県|沖縄県"
)
_PLACE_CHARS = "\u4e00-\u9fff々〆ヵヶァ-ヺ"
_MUNICIPALITY = f"(?:[{_PLACE_CHARS}]{{1,7}}?[市区町村郡]|さいたま市|つくば市|ひたちなか市|いわき市)"
_BLOCK_NUMBER = "(?:[0-9]+|[一二三四五六七八九十]+)"
_ADDRESS = re.compile(
    f"(?:(?:{_PREFECTURE}){_MUNICIPALITY}*|{_MUNICIPALITY}+)[{_PLACE_CHARS}]{{0,10}}?"
    f"{_BLOCK_NUMBER}(?:(?:丁目|番地|番|号|-|の){_BLOCK_NUMBER}?)+"
    f"(?:[ ]?[{_PLACE_CHARS}A-Za-z-]{{1,20}}?[0-9]+(?:号室|階|F)?)?"
)

_PATTERNS: dict[str, re.Pattern[str]] = {
    # The local part takes every character RFC 5322 allows unquoted (a*b@example.com is a valid address).
    "email": re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),
    # Card numbers are written whole or in groups (4-4-4-4, 4-6-5) with one kind of separator; requiring that
    # keeps two phone numbers side by side from reading as one card and half-masking the second.
    "card": re.compile(
        r"(?<![0-9])(?:[0-9]{13,19}|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{1,7}|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5})"
        r"(?![0-9])"
    ),
    "my_number": re.compile(r"(?<![0-9])(?:[0-9]{12}|[0-9]{4}([ -])[0-9]{4}\1[0-9]{4})(?![0-9])"),
    # 090-1234-5678, 0312345678, (03)1234-5678, 03(1234)5678, +81-90-1234-5678; the digit count is checked after.
    "phone": re.compile(
        r"(?<![0-9+])(?:\(0[0-9]{1,4}\)[ -]?[0-9]{1,4}[ -]?|0[0-9]{1,4}\([0-9]{1,4}\)"
        r"|(?:\+81[ -]?(?:\(0\))?|0)[0-9]{1,4}[ -]?[0-9]{1,4}[ -]?)[0-9]{3,4}(?![0-9])"
    ),
    "postal": re.compile(r"〒 ?[0-9]{3}-?[0-9]{4}(?![0-9])|(?<![0-9-])[0-9]{3}-[0-9]{4}(?![0-9-])"),
    "address": _ADDRESS,
    # A whole run of kanji (or katakana) right before the honorific; 様々, 様子, 様式, 様相 are not honorifics.
    # The run never takes in a 様 itself: in 山田様さま the name is 山田, not 山田様.
    "name": re.compile(
        r"((?<![々〆ヵヶ])(?:(?<=様)|(?<![\u4e00-\u9fff]))(?:(?!様)[\u4e00-\u9fff々〆ヵヶ]){1,8}"
        r"|(?<![ァ-ヺー])[ァ-ヺー]{2,12})(?=(?:様(?![々子式相態])|さま))"
    ),
}

# Names written without 様 are found by their context and Sudachi's part of speech, reading only the dozen
# characters before (or after) each place a name is likely, not whole texts:
# - right before an honorific, です or a self-introduction, a surname or given name in Sudachi's dictionary
#   (田中さん, たなか様, 鈴木一郎です, カスタマーサポートの佐藤です, 佐藤といいます);
# - right before と申します / と申す, any short run of nouns (森と申します, 松本と申します: Sudachi tags 森 a
#   common noun and 松本 a place);
# - right after a label (お名前は…, 氏名：…), a run of nouns that ends the phrase (名前は森です, 氏名：山田 花子),
#   but not 名前は変更できますか.
# A full name with no context around it (鈴木一郎に変更) is not found.
_BEFORE_HONORIFIC = re.compile(r"さん|さま|様|くん|ちゃん|君|氏|殿|と(?:言|い)[いうっ]|です|でございます")
_BEFORE_SELF_INTRODUCTION = re.compile(r"と申[しす]")
_LABELS = "名前|氏名|名義|宛名|フルネーム"
_AFTER_LABEL = re.compile(rf"(?:{_LABELS})(?:は|:|：)[ \u3000]*")
_PHRASE_END = re.compile(r"[ \u3000]*(?:$|です|でございます|と申|[。、！？!?,，.\n「」（）()])")
_WINDOW = 12  # characters read before an anchor: a name with what Sudachi needs to cut it right

# Every pattern needs one of these: a digit, an @, a name's context, or a block number written in kanji. Made from
# the context patterns themselves, so the quick test cannot fall behind them.
_ANY = re.compile(
    "|".join(("[0-9@]", _BEFORE_HONORIFIC.pattern, _BEFORE_SELF_INTRODUCTION.pattern, _LABELS, "丁目|番地"))
)

# Words before 様 that are not names: the whole kanji run, or how it ends.
_NOT_NAMES = frozenset("客 皆 各位 同 仕 模 多 異 一 今 王 神 仏 奥 殿 貴 両 上 別 各 外 有 文 紋 図".split())
_NOT_NAME_ENDINGS = (
    "者", "員", "客", "位", "族", "社", "店", "部", "課", "係", "先", "主", "者", "方",
    "ユーザー", "オーナー", "ゲスト", "メンバー", "カスタマー", "クライアント", "スタッフ",
)  # fmt: skip


def _phone_ok(digits: str) -> bool:
    if digits.startswith("81"):
        rest = digits[2:].removeprefix("0")
        return 9 <= len(rest) <= 10
    return digits.startswith("0") and 10 <= len(digits) <= 11


# Words that take お / ご and 様 without being anyone's name: お子さま, お一人様, ご家族様, お連れ様 …
_NOT_NAMES_AFTER_O = frozenset(
    "子 一人 二人 家族 連れ 母 父 姉 兄 祖母 祖父 孫 嬢 得意 世話 疲れ 互い 陰 待ち 依頼主 近所".split()
)


def _is_name(run: str, before: str = "") -> bool:
    if before in ("お", "ご", "御") and run in _NOT_NAMES_AFTER_O:
        return False
    return run not in _NOT_NAMES and not run.endswith(_NOT_NAME_ENDINGS)


def _is_person(pos: tuple[str, ...]) -> bool:
    return pos[1] == "固有名詞" and pos[2] == "人名" and pos[3] in ("姓", "名")


def _is_noun(pos: tuple[str, ...]) -> bool:
    return pos[0] == "名詞" and pos[1] != "数詞"


def _run_before(text: str, end: int, take) -> tuple[int, int] | None:
    """The span of the morphemes that `take` accepts, ending exactly at `end` (at most 3, a space between two
    allowed), or None."""
    start0 = max(0, end - _WINDOW)
    morphemes = [(s + start0, e + start0, pos) for s, e, pos in text_morphemes(text[start0:end])]
    start = end
    taken = 0
    for s, e, pos in reversed(morphemes):
        if e != start or taken == 3:
            break
        if pos[0] == "空白" and taken:
            start = s
            continue
        if not take(pos):
            break
        start, taken = s, taken + 1
    while start < end and text[start] in " \u3000":
        start += 1
    return (start, end) if taken else None


def _run_after(text: str, start: int) -> tuple[int, int] | None:
    """The nouns right after a label, if they end the phrase (氏名：山田 花子。), or None."""
    end = start
    taken = 0
    for s, e, pos in ((s + start, e + start, pos) for s, e, pos in text_morphemes(text[start : start + _WINDOW])):
        if s != end or taken == 3 or not (_is_noun(pos) or pos[0] == "空白" and taken):
            break
        end, taken = e, taken + (pos[0] != "空白")
    end = len(text[:end].rstrip(" \u3000"))
    if not taken or not _PHRASE_END.match(text, end):
        return None
    return start, end


def _names_in_context(text: str) -> Iterator[tuple[int, int]]:
    """Spans of names found by their context (see above), in no particular order, possibly overlapping."""
    for match in _BEFORE_HONORIFIC.finditer(text):
        span = _run_before(text, match.start(), _is_person)
        if span:
            yield span
    for match in _BEFORE_SELF_INTRODUCTION.finditer(text):
        span = _run_before(text, match.start(), _is_noun)
        if span and _is_name(text[span[0] : span[1]]):
            yield span
    for match in _AFTER_LABEL.finditer(text):
        span = _run_after(text, match.end())
        if span:
            yield span


@dataclass
class Masker:
    """Masks the configured kinds; `counts` adds up the spans masked by every call so far."""

    kinds: tuple[str, ...] = PII_KINDS
    allow: Iterable[str] = ()
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(PII_KINDS)
        if unknown:
            raise ValueError(f"unknown personal-data kinds: {', '.join(sorted(unknown))}")
        self.kinds = tuple(k for k in PII_KINDS if k in self.kinds)
        self._allowed = frozenset(a.translate(_FOLD).strip() for a in self.allow if a.strip())
        self._memo: dict[str, tuple[str, Counter]] = {}

    def mask(self, text: str) -> str:
        masked, counts = self._mask(text)
        self.counts.update(counts)
        return masked

    def mask_repeated(self, text: str) -> str:
        """`mask` for text seen again and again (FAQ entries in every example): remembered per text."""
        hit = self._memo.get(text)
        if hit is None:
            if len(self._memo) > 50_000:
                self._memo.clear()
            hit = self._memo[text] = self._mask(text)
        self.counts.update(hit[1])
        return hit[0]

    def _mask(self, text: str) -> tuple[str, Counter]:
        counts: Counter = Counter()
        if not text or not self.kinds:
            return text, counts
        scan = text.translate(_FOLD)
        if not _ANY.search(scan):  # most text has nothing any pattern could match
            return text, counts
        spans: list[tuple[int, int, str]] = []
        for kind in self.kinds:
            if kind == "name":
                found_spans = [m.span(1) for m in _PATTERNS[kind].finditer(text)]
                found_spans += sorted(_names_in_context(text))
            else:
                found_spans = [m.span() for m in _PATTERNS[kind].finditer(scan)]
            for start, end in found_spans:
                if any(start < e and s < end for s, e, _ in spans):
                    continue
                found = (text if kind == "name" else scan)[start:end]
                if found.strip() in self._allowed:
                    continue
                if kind == "phone" and not _phone_ok(re.sub(r"[^0-9]", "", found)):
                    continue
                if kind == "name" and not _is_name(found, text[start - 1 : start] if start else ""):
                    continue
                spans.append((start, end, kind))
        if not spans:
            return text, counts
        out: list[str] = []
        at = 0
        for start, end, kind in sorted(spans):
            out.append(text[at:start])
            out.append(MASK_PLACEHOLDERS[kind])
            counts[kind] += 1
            at = end
        out.append(text[at:])
        return "".join(out), counts


def masker_from_settings(*, kinds: Iterable[str] | None = None, allow: Iterable[str] | None = None) -> Masker:
    from django.conf import settings

    return Masker(
        kinds=tuple(settings.TRAINING_PII_KINDS if kinds is None else kinds),
        allow=tuple(settings.TRAINING_PII_ALLOW if allow is None else allow),
    )

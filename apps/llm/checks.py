"""Checks on every generated reply before a customer sees it (JAPANESE_REPLIES.md, "Things a check can catch").

- keigo: each sentence that ends in a predicate ends in a です/ます form (or ください), judged from SudachiPy's
  part of speech; list items, quoted text and parenthetical lines are left alone, since FAQ steps are often
  written in plain form.
- letter_style / translated_phrase / double_honorific / ryokai / emoji_slang: word lists.
- grounding: every URL, e-mail address, phone number, price, date and time in the reply appears in the FAQ
  entries offered to the model, the conversation, or the bot's own fixed texts.
- length: a chat reply much longer than the FAQ answer it is based on.
- garbled: undecodable bytes from the model (U+FFFD).

`reply_check` returns every failure, each {"check": name, "reason": what and where}; the reply pipeline sends the
FAQ-based fallback reply when any is present and records them with the message.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache

from apps.llm.texts import get_texts
from apps.llm.types import ReplyRequest

DEFAULT_MAX_CHARS = 400


@dataclass(frozen=True)
class CheckResult:
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, object]:
        return {"passed": self.ok, "failures": list(self.failures)}


def reply_check(text: str, request: ReplyRequest, *, max_chars: int = DEFAULT_MAX_CHARS) -> CheckResult:
    """Every check on one reply. `request` supplies the FAQ entries and conversation the reply must stay within."""
    if not text.strip():
        return CheckResult([{"check": "empty", "reason": "the reply has no text"}])
    sources = _sources(request)
    failures = [
        *garbled_failures(text),
        *keigo_failures(text),
        *word_list_failures(text, allowed=sources),
        *grounding_failures(text, sources),
        *length_failures(text, request, max_chars=max_chars),
    ]
    return CheckResult(failures)


def _failure(check: str, reason: str) -> dict[str, str]:
    return {"check": check, "reason": reason}


def garbled_failures(text: str) -> list[dict[str, str]]:
    """Bytes that did not decode (U+FFFD): a model that emits broken characters is not fit to send."""
    count = text.count("\ufffd")
    return [_failure("garbled", f"{count} undecodable character(s) in the reply")] if count else []


# --- keigo: sentence endings -------------------------------------------------------------------------------

_QUOTED = re.compile(r"「[^「」]*」|『[^『』]*』|\"[^\"\n]*\"")
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.．)）、]|[（(]\d+[)）]|[①-⑳]|[・\-*•●■◆▶])")
_PARENTHETICAL = re.compile(r"^\s*[（(].*[)）]\s*$")
_SENTENCE_END = re.compile(r"(?<=[。！？!?])")
_URLISH = re.compile(r"https?://\S+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Auxiliaries that may follow the polite one: まし-た, ませ-ん, でしょ-う.
_AFTER_POLITE = {"た", "ぬ", "ん", "う"}
_POLITE_AUX = {"です", "ます"}

_local = threading.local()


@cache
def _dictionary():
    from sudachipy import Dictionary

    return Dictionary(dict="core")


def _tokenizer():
    # Sudachi tokenizers must not be shared between threads; the dictionary can be.
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        from sudachipy import SplitMode

        tokenizer = _local.tokenizer = _dictionary().tokenizer(mode=SplitMode.C)
    return tokenizer


def sentences(text: str) -> Iterator[str]:
    """The sentences whose register is the bot's own: quotes, list items and parentheticals left out."""
    previous = None
    while previous != text:  # innermost quotes first, for 「…『…』…」
        previous, text = text, _QUOTED.sub("「」", text)
    for line in text.splitlines():
        if not line.strip() or _LIST_ITEM.match(line) or _PARENTHETICAL.match(line):
            continue
        for sentence in _SENTENCE_END.split(_URLISH.sub("URL", line)):
            if sentence.strip():
                yield sentence.strip()


def plain_ending(sentence: str) -> str | None:
    """The sentence's final predicate when it is not in a polite form, else None.

    Sentences ending in a noun (体言止め), a quote or a symbol have no predicate to judge and pass.
    """
    morphemes = list(_tokenizer().tokenize(sentence))
    i = len(morphemes) - 1
    while i >= 0 and morphemes[i].part_of_speech()[0] in ("補助記号", "空白", "記号"):
        i -= 1
    while i >= 0 and morphemes[i].part_of_speech()[:2] == ("助詞", "終助詞"):
        i -= 1
    if i < 0:
        return None
    last = i
    while i > 0 and morphemes[i].part_of_speech()[0] == "助動詞" and morphemes[i].dictionary_form() in _AFTER_POLITE:
        i -= 1
    head = morphemes[i]
    pos, lemma = head.part_of_speech()[0], head.dictionary_form()
    if pos == "助動詞" and lemma in _POLITE_AUX:
        return None
    if pos == "動詞" and lemma in ("くださる", "下さる") and head.surface() in ("ください", "下さい"):
        return None
    ending = "".join(m.surface() for m in morphemes[max(i - 1, 0) : last + 1])
    if pos == "感動詞" and lemma == "ありがとう":  # ありがとう without ございます
        return ending
    if pos in ("動詞", "形容詞", "助動詞"):
        return ending
    return None


def keigo_failures(text: str) -> list[dict[str, str]]:
    failures = []
    for sentence in sentences(text):
        ending = plain_ending(sentence)
        if ending is not None:
            failures.append(_failure("keigo", f"sentence not in です・ます form (ends 「{ending}」): 「{sentence}」"))
    return failures


# --- word lists ----------------------------------------------------------------------------------------------

LETTER_STYLE = (
    "拝啓",
    "敬具",
    "前略",
    "草々",
    "謹啓",
    "謹白",
    "拝具",
    "時下",
    "ご清栄",
    "ご清祥",
    "お慶び申し上げます",
)
TRANSLATED_PHRASES = (
    re.compile(r"親愛なる"),
    re.compile(r"様へ(?:[、。,!！\s]|$)", re.MULTILINE),
    re.compile(r"敬意を込めて|心を込めて|幸運を"),
    re.compile(r"よろしくお願い(?:いた)?します[！!]"),
    re.compile(r"\b(?:Dear|Best regards|Sincerely|Kind regards)\b", re.IGNORECASE),
)
DOUBLE_HONORIFICS = (
    "おっしゃられ",
    "お伺いさせていただ",
    "ご覧になられ",
    "お召し上がりになられ",
    "お見えになられ",
    "お越しになられ",
    "おいでになられ",
    "お帰りになられ",
    "拝見させていただ",
)
# させていただく is polite once; three times in one chat reply is the over-humble style the guide warns about.
SASETE_ITADAKU = re.compile(r"させていただ|させて頂")
SASETE_ITADAKU_MAX = 2
RYOKAI = re.compile(r"(?<!ご)了解(?:しました|いたしました|です|しております|!|！|。|$)", re.MULTILINE)
SLANG = re.compile(
    r"じゃん|っす(?:[。!！]|$)|マジ|まじで|ヤバ|やば[いっ]|ウケる|めっちゃ|[wｗ]{2,}|[(（]笑[)）]|だよ[ねー！!。]?|だね[ー！!。]",
    re.MULTILINE,
)
EMOJI = re.compile("[\U0001f000-\U0001faff\U00002600-\U000027bf\U00002b00-\U00002bff\U0000fe0f\U0000200d\U000020e3]")


def word_list_failures(text: str, *, allowed: str = "") -> list[dict[str, str]]:
    """Letter openers/closers, translated phrases, double honorifics, 了解, emoji and slang."""
    failures = []
    for word in LETTER_STYLE:
        if word in text:
            failures.append(_failure("letter_style", f"letter-style phrase 「{word}」 in a chat reply"))
    for pattern in TRANSLATED_PHRASES:
        for match in pattern.finditer(text):
            failures.append(_failure("translated_phrase", f"translated-style phrase 「{match.group().strip()}」"))
    for word in DOUBLE_HONORIFICS:
        if word in text:
            failures.append(_failure("double_honorific", f"double honorific 「{word}」"))
    overuse = len(SASETE_ITADAKU.findall(text))
    if overuse > SASETE_ITADAKU_MAX:
        failures.append(_failure("double_honorific", f"「させていただく」 used {overuse} times"))
    if ryokai := RYOKAI.search(text):
        failures.append(_failure("ryokai", f"「{ryokai.group()}」 to a customer (use 承知いたしました)"))
    for match in SLANG.finditer(text):
        failures.append(_failure("emoji_slang", f"casual wording 「{match.group()}」"))
    emoji = sorted({c for c in EMOJI.findall(text) if c not in allowed and c not in "\ufe0f\u200d\u20e3"})
    if emoji:
        failures.append(_failure("emoji_slang", f"emoji {''.join(emoji)}"))
    return failures


# --- grounding -----------------------------------------------------------------------------------------------

_URL = re.compile(r"(?:https?://|www\.)[^\s<>\"'「」『』（）()【】、。，,]+", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\d.])(?:\+81[-\s]?|0)\(?\d{1,4}\)?[-\s]?\d{1,4}[-\s]?\d{3,4}(?![\d])")
_PRICE = re.compile(
    r"[¥￥]\s?(?P<yen>\d[\d,]*)"
    r"|(?P<num>\d[\d,]*(?:\.\d+)?)\s?(?P<unit>万|千)?(?P<rest>\d[\d,]*)?\s?円"
)
_DATE = re.compile(
    r"(?:(?P<y>\d{4})\s?年\s?)?(?P<m>\d{1,2})\s?月\s?(?P<d>\d{1,2})\s?日"
    r"|(?P<y2>\d{4})[/-](?P<m2>\d{1,2})[/-](?P<d2>\d{1,2})"
)
_TIME = re.compile(
    r"(?<!\d)(?P<h>\d{1,2}):(?P<min>\d{2})(?!\d)|(?<!\d)(?P<h2>\d{1,2})\s?時(?!間)(?:\s?(?P<min2>\d{1,2})\s?分|(?P<half>半))?"
)


@dataclass(frozen=True)
class Fact:
    kind: str  # url | email | phone | price | date | time
    key: str  # normalised, for comparison
    text: str  # as written in the reply


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def facts(text: str) -> list[Fact]:
    """The checkable facts in `text`: URLs and e-mails first, then the rest with those removed."""
    text = _normalise(text)
    found: list[Fact] = []
    for match in _URL.finditer(text):
        url = match.group().rstrip(".:;!?)")
        key = re.sub(r"^(?:https?://)?(?:www\.)?", "", url, flags=re.IGNORECASE).rstrip("/")
        found.append(Fact("url", key.lower(), url))
    for match in _EMAIL.finditer(text):
        found.append(Fact("email", match.group().lower(), match.group()))
    rest = _EMAIL.sub(" ", _URL.sub(" ", text))
    for match in _PHONE.finditer(rest):
        digits = re.sub(r"\D", "", match.group())
        digits = "0" + digits[2:] if match.group().startswith("+81") else digits
        if 10 <= len(digits) <= 11:
            found.append(Fact("phone", digits, match.group().strip()))
    for match in _PRICE.finditer(rest):
        value = _price_value(match)
        if value is not None:
            found.append(Fact("price", str(value), match.group().strip()))
    for match in _DATE.finditer(rest):
        year = match.group("y") or match.group("y2")
        month = int(match.group("m") or match.group("m2"))
        day = int(match.group("d") or match.group("d2"))
        found.append(Fact("date", f"{int(year)}-{month}-{day}" if year else f"{month}-{day}", match.group()))
    for match in _TIME.finditer(_DATE.sub(" ", rest)):
        hour = int(match.group("h") or match.group("h2"))
        minute = 30 if match.group("half") else int(match.group("min") or match.group("min2") or 0)
        found.append(Fact("time", f"{hour}:{minute:02d}", match.group().strip()))
    return found


def _price_value(match: re.Match[str]) -> int | None:
    try:
        if match.group("yen"):
            return int(match.group("yen").replace(",", ""))
        number = float(match.group("num").replace(",", ""))
        unit = {"万": 10_000, "千": 1_000, None: 1}[match.group("unit")]
        rest = int(match.group("rest").replace(",", "")) if match.group("rest") else 0
        if rest and not match.group("unit"):
            return None
        return int(round(number * unit)) + rest
    except ValueError:
        return None


def _sources(request: ReplyRequest) -> str:
    texts = get_texts()
    parts: list[str] = [f"{f.question}\n{f.answer}" for f in request.faq]
    parts.extend(turn.content for turn in request.turns)
    parts.extend(v for k, v in vars(texts).items() if isinstance(v, str))
    return "\n".join(parts)


def grounding_failures(text: str, sources: str | Iterable[str]) -> list[dict[str, str]]:
    """Facts in `text` that none of `sources` contains (a URL may be a shortened form of a source URL)."""
    source_text = sources if isinstance(sources, str) else "\n".join(sources)
    known: dict[str, set[str]] = {}
    for fact in facts(source_text):
        known.setdefault(fact.kind, set()).add(fact.key)
    failures = []
    seen: set[tuple[str, str]] = set()
    for fact in facts(text):
        if (fact.kind, fact.key) in seen:
            continue
        seen.add((fact.kind, fact.key))
        keys = known.get(fact.kind, set())
        grounded = fact.key in keys
        if fact.kind == "url":
            grounded = any(k == fact.key or k.startswith(fact.key + "/") for k in keys)
        elif fact.kind == "date" and "-" in fact.key and fact.key.count("-") == 1:
            grounded = grounded or any(k.endswith("-" + fact.key) for k in keys)
        if not grounded:
            failures.append(_failure("grounding", f"{fact.kind} 「{fact.text}」 is not in the FAQ or conversation"))
    return failures


# --- length --------------------------------------------------------------------------------------------------


def length_failures(text: str, request: ReplyRequest, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[dict[str, str]]:
    """Longer than `max_chars`, or than the longest offered FAQ answer plus a polite frame, whichever is more."""
    longest = max((len(f.answer) for f in request.faq), default=0)
    limit = max(max_chars, longest + 200)
    length = len(text.strip())
    if length > limit:
        return [_failure("length", f"{length} characters; a chat reply here should stay within {limit}")]
    return []

"""Japanese text normalisation, shared by indexing and querying so both sides see the same words.

Two levels:

- `text_normalize` cleans raw text for the embedder and for display-independent hashing: control characters
  dropped, NFKC (全角英数 → 半角, 半角カナ → 全角), case folded, whitespace collapsed.
- `text_tokens` turns text into BM25 terms: SudachiPy morphemes (split mode C) reduced to their normalised form
  (申込み/申し込み/申込 → 申し込み, ﾛｸﾞｲﾝ → ログイン), with the company's product and service names kept whole by a
  user dictionary, compound nouns also split into their short units (配送料金 → 配送料金, 配送, 料金), particles,
  auxiliaries and filler verbs dropped, and negations kept (ない, ません, できない → "ない" plus a "出来る~ない" term)
  because 「ログインできない」 and 「ログインできる」 are different questions.

The user dictionary is a small CSV in Sudachi's source format (apps/faq/dictionary/user_dict.csv by default,
FAQ_USER_DICT to use another, empty to use none); it is compiled once per content hash into FAQ_CACHE_DIR with
`sudachipy.build_user_dic`, so editing the CSV needs no build step.

Sudachi tokenizers are not safe to share between threads, so each thread gets its own; the dictionary itself is
loaded once per process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import unicodedata
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

DEFAULT_USER_DICT = Path(__file__).resolve().parent / "dictionary" / "user_dict.csv"

# Parts of speech that carry no topic on their own. Negating auxiliaries are rescued before this filter.
_DROP_POS = {"助詞", "助動詞", "補助記号", "空白", "記号", "接頭辞", "感動詞", "接続詞", "フィラー"}

# Normalised forms of content-free words that every customer question is full of (「教えてください」「どうすれば
# いいですか」「したいのですが」). Negations are deliberately absent: see _NEGATIONS.
STOP_WORDS = frozenset(
    """
    為る 有る 居る 成る 出来る 下さる 頂く 致す 遣る 貰う 呉れる 仕舞う 置く 見る 来る 行く 言う 思う 分かる
    教える 知る 願う 御願い 良い 宜しい 欲しい 可能
    事 物 為 様 方 時 所 中 際 場合 方法 やり方 仕方 件 点 今 其れ 此れ 何 何時 何処 如何 どう どの どれ どこ
    いつ なぜ 何故 何で ちょっと 一寸 もう 又 まだ そう こう
    """.split()
)

# Normalised forms that negate the word before them. Sudachi gives ない (助動詞), 無い (形容詞, 「〜がない」),
# ず (ません's ん, 〜ず), ぬ; all become the single term "ない".
_NEGATIONS = frozenset({"ない", "無い", "ず", "ぬ", "ん"})
NEGATION = "ない"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
_SPACE = re.compile(r"\s+")

# Sudachi refuses inputs above ~49 KB of UTF-8; long texts are analysed in pieces of this many characters.
_SUDACHI_CHUNK = 4000

_dictionary = None
_dictionary_lock = threading.Lock()
_local = threading.local()


def text_normalize(text: str) -> str:
    """NFKC, case-folded, control characters removed, whitespace collapsed. Never raises on a str."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = _CONTROL.sub(" ", text)
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", text).strip()


def text_tokens(text: str) -> list[str]:
    """BM25 terms for `text` (see the module docstring). Empty for text with no content words."""
    text = text_normalize(text)
    if not text:
        return []
    tokenizer = _tokenizer()
    terms: list[str] = []
    for start in range(0, len(text), _SUDACHI_CHUNK):
        previous: str | None = None
        for morpheme in tokenizer.tokenize(text[start : start + _SUDACHI_CHUNK]):
            pos = morpheme.part_of_speech()
            form = morpheme.normalized_form()
            if form in _NEGATIONS and pos[0] in ("助動詞", "形容詞"):
                terms.append(NEGATION)
                if previous:
                    terms.append(f"{previous}~{NEGATION}")
                previous = None
                continue
            if pos[0] in _DROP_POS or pos[1] == "数詞" and not form.isdigit():
                continue
            # The verb is remembered even when it is a stop word, so 「できない」 still yields 出来る~ない.
            previous = form
            if form in STOP_WORDS or len(form) == 1 and form.isascii() and not form.isdigit():
                continue
            terms.append(form)
            if pos[0] == "名詞" and len(morpheme) > 2:
                parts = morpheme.split(_split_mode_a())
                if len(parts) > 1:
                    terms.extend(p.normalized_form() for p in parts if p.normalized_form() not in STOP_WORDS)
    return terms


def user_dictionary_path() -> Path | None:
    """The compiled user dictionary for FAQ_USER_DICT, building it on first use; None if there is none."""
    source = _user_dict_source()
    if source is None:
        return None
    content = source.read_bytes()
    digest = hashlib.sha256(content + _sudachi_version().encode()).hexdigest()[:16]
    target = Path(settings.FAQ_CACHE_DIR) / "sudachi" / f"user-{digest}.dic"
    if target.exists():
        return target
    import sudachipy
    from sudachipy import sudachipy as sudachi_native

    target.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place, so a process that loses a race or dies half-way never
    # leaves a truncated dictionary for others to load.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".dic.tmp")
    os.close(fd)
    os.unlink(tmp)
    try:
        sudachi_native.build_user_dic(
            system=sudachipy._find_dict_path("core"), lex=[str(source)], output=tmp, description=source.name[:200]
        )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("Built Sudachi user dictionary %s from %s", target, source)
    return target


def tokenizer_version() -> str:
    """Identifies everything that changes `text_tokens` output; saved with the index so a change re-tokenises."""
    source = _user_dict_source()
    user = hashlib.sha256(source.read_bytes()).hexdigest()[:12] if source else "none"
    return f"sudachi-{_sudachi_version()}-C+A-{user}-v1"


def _user_dict_source() -> Path | None:
    configured = getattr(settings, "FAQ_USER_DICT", None)
    source = DEFAULT_USER_DICT if configured is None else configured
    if not str(source):
        return None
    return Path(source)


def text_morphemes(text: str) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, part of speech) of each morpheme of `text` as written (offsets into `text`, not normalised).

    With the same dictionary as `text_tokens`, the company's user dictionary included, so its product and service
    names come out as the names they are. For short texts: it is not split into pieces."""
    if not text:
        return []
    return [(m.begin(), m.end(), m.part_of_speech()) for m in _tokenizer().tokenize(text[:_SUDACHI_CHUNK])]


def _sudachi_version() -> str:
    import sudachipy

    return getattr(sudachipy, "__version__", "0")


def _load_dictionary():
    global _dictionary
    with _dictionary_lock:
        if _dictionary is None:
            from sudachipy import Config, Dictionary

            user = user_dictionary_path()
            config = Config(user=[str(user)]) if user else Config()
            _dictionary = Dictionary(config=config, dict="core")
        return _dictionary


def _tokenizer():
    tokenizer = getattr(_local, "tokenizer", None)
    dictionary = _load_dictionary()
    if tokenizer is None or getattr(_local, "dictionary", None) is not dictionary:
        from sudachipy import SplitMode

        tokenizer = dictionary.tokenizer(SplitMode.C)
        _local.tokenizer, _local.dictionary = tokenizer, dictionary
    return tokenizer


def _split_mode_a():
    from sudachipy import SplitMode

    return SplitMode.A


def reset_for_tests() -> None:
    """Forget the loaded dictionary (after a test changes FAQ_USER_DICT)."""
    global _dictionary
    with _dictionary_lock:
        _dictionary = None

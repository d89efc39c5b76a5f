"""The prompt sent to the model, in KARAKURI's own format.

With a tokenizer that carries a chat template (the 8x7B models, or a 70B directory that ships one) the prompt is
rendered by `apply_chat_template`, the attribute values passed as extra keys on each user message. Otherwise the
built-in renderer writes the KARAKURI LM 70B Chat v0.1 format:

    <s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user 1} [ATTR] helpfulness: 4 ... creativity: 0 [/ATTR] [/INST]
    {assistant 1} </s><s>[INST] {user 2} [ATTR] ... [/ATTR] [/INST]

(one line here; the real text has a space between "[/INST]" and the assistant text). The system text only appears
in the first user turn, and roles strictly alternate.

Text that does not come from this module (customer messages, earlier replies, FAQ entries) is sanitised first, so
that nothing in it can become structure: format markers ([INST], <<SYS>>, <s>, ...) and the tokenizer's special
tokens have their brackets swapped for look-alike CJK brackets in the copy the model sees. The customer's stored
message is never changed. After rendering, the control-token ids are counted against what the structure alone
produces; a mismatch raises UnsafePrompt rather than sending the prompt.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

from apps.llm.attributes import ATTRIBUTE_NAMES, format_attributes, resolve_attributes
from apps.llm.errors import PromptTooLong, UnsafePrompt
from apps.llm.texts import get_texts
from apps.llm.types import ChatTurn, FaqContext, ReplyRequest

PromptFormat = Literal["karakuri-70b-chat-v0.1", "chat-template"]
BUILTIN_FORMAT: PromptFormat = "karakuri-70b-chat-v0.1"
CHAT_TEMPLATE_FORMAT: PromptFormat = "chat-template"
BUILTIN_BOS = "<s>"
BUILTIN_EOS = "</s>"

# Markers of the built-in format, matched on a per-character NFKC view so that full-width look-alikes
# (［ＩＮＳＴ］, ＜ｓ＞) are caught too: a tokenizer with an NFKC normaliser would turn those back into ASCII.
_FORMAT_MARKERS = re.compile(r"\[\s*/?\s*(?:INST|ATTR)\s*\]|<<\s*/?\s*SYS\s*>>|<\s*/?\s*s\s*>", re.IGNORECASE)
# NFKC-stable replacements: they stay what they are through any normaliser.
_BRACKET_SWAP = {"[": "【", "]": "】", "<": "〈", ">": "〉"}
_WORD_JOINER = "\u2060"
# C0/C1 control characters other than tab and newline carry nothing a customer meant to say.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_ELLIPSIS = "…"


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt ready for a backend.

    `text` is the exact prompt string; `token_ids` is set when a tokenizer rendered it (use these rather than
    re-tokenising `text`, which could re-read a control token). `messages` is the same conversation as
    OpenAI-style chat messages (system first, sanitised content), for servers that apply the template themselves.
    `n_tokens` counts tokens when a tokenizer was given, else characters (a safe over-estimate for Japanese).
    """

    text: str
    token_ids: tuple[int, ...] | None
    format: PromptFormat
    attributes: dict[str, int]
    messages: tuple[dict[str, Any], ...]
    faq_ids: tuple[str, ...]
    n_tokens: int
    dropped_turns: int = 0
    dropped_faq_ids: tuple[str, ...] = ()
    truncated: bool = False
    stop: tuple[str, ...] = field(default=(BUILTIN_EOS, "[INST]"))


# --- Sanitising -------------------------------------------------------------------------------------------


def _fold(text: str) -> tuple[str, list[int]]:
    """NFKC per character, with the index of the original character behind each folded one."""
    pieces: list[str] = []
    owners: list[int] = []
    for index, char in enumerate(text):
        folded = unicodedata.normalize("NFKC", char) if ord(char) > 0x7F else char
        pieces.append(folded)
        owners.extend([index] * len(folded))
    return "".join(pieces), owners


def _special_pattern(special_tokens: Sequence[str]) -> re.Pattern[str] | None:
    # One-character tokens cannot be broken apart; the control-id count after rendering still guards them.
    tokens = sorted({t for t in special_tokens if len(t.strip()) > 1}, key=len, reverse=True)
    return re.compile("|".join(re.escape(t) for t in tokens)) if tokens else None


def _neutralise(text: str, pattern: re.Pattern[str]) -> str:
    folded, owners = _fold(text)
    spans = [(owners[m.start()], owners[m.end() - 1] + 1) for m in pattern.finditer(folded) if m.end() > m.start()]
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        swapped = False
        for i in range(start, end):
            target = _BRACKET_SWAP.get(unicodedata.normalize("NFKC", chars[i]))
            if target:
                chars[i] = target
                swapped = True
        if not swapped:  # a special token without brackets: break it after its first character
            chars[start] = chars[start] + _WORD_JOINER
    return "".join(chars)


def sanitize_text(text: str, *, special_tokens: Sequence[str] = ()) -> str:
    """The copy of untrusted text the model sees: no format markers, no special tokens, no control characters.

    Only what would make structure is changed (the brackets of a marker become CJK brackets; a bracket-less
    special token gets a word joiner after its first character); everything else reads as typed.
    """
    return _sanitize_cached(text, tuple(special_tokens))


# Pure, and called on the same FAQ answers for every reply and for every example of a training export (where
# sanitising was four fifths of the time): remember recent results.
@functools.lru_cache(maxsize=8192)
def _sanitize_cached(text: str, special_tokens: tuple[str, ...]) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    patterns = [_FORMAT_MARKERS]
    special = _special_pattern(special_tokens)
    if special is not None:
        patterns.append(special)
    # Neutralising one pattern cannot create a match of another, but loop until stable all the same, so that the
    # check below is a real postcondition rather than a hope.
    for _ in range(4):
        before = text
        for pattern in patterns:
            text = _neutralise(text, pattern)
        if text == before:
            break
    folded, _ = _fold(text)
    if any(p.search(folded) for p in patterns):
        raise UnsafePrompt("customer text still contains a format marker after sanitising")
    return text


def _tokenizer_specials(tokenizer: Any) -> list[str]:
    if tokenizer is None:
        return [BUILTIN_BOS, BUILTIN_EOS]
    specials = list(getattr(tokenizer, "all_special_tokens", []) or [])
    for added in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        specials.append(getattr(added, "content", str(added)))
    return specials


def _control_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids.update((getattr(tokenizer, "added_tokens_decoder", None) or {}).keys())
    # <unk> stands for text the vocabulary lacks, which customer text may well contain: it is not structure.
    ids.discard(getattr(tokenizer, "unk_token_id", None))
    return {i for i in ids if i is not None}


# --- Rendering ---------------------------------------------------------------------------------------------


def _alternating(turns: Sequence[ChatTurn]) -> list[ChatTurn]:
    """Strict user/assistant alternation starting with the user: merge runs, drop leading assistant turns."""
    result: list[ChatTurn] = []
    for turn in turns:
        if not result and turn.role != "user":
            continue
        if result and result[-1].role == turn.role:
            result[-1] = ChatTurn(role=turn.role, content=result[-1].content + "\n" + turn.content)
        else:
            result.append(turn)
    if not result or result[-1].role != "user":
        raise ValueError("a reply request must end with the customer's message")
    return result


def system_text(faq: Sequence[FaqContext], *, confident: bool, is_first_reply: bool) -> str:
    """The system text: persona, style rules, and the FAQ entries to answer from (or the not-found instruction)."""
    texts = get_texts()
    parts = [texts.SYSTEM_PERSONA.format(company_name=texts.COMPANY_NAME), texts.SYSTEM_RULES]
    parts.append(texts.SYSTEM_FIRST_REPLY if is_first_reply else texts.SYSTEM_FOLLOW_UP)
    if confident and faq:
        entries = [
            texts.SYSTEM_FAQ_ENTRY.format(faq_id=f.faq_id, question=f.question.strip(), answer=f.answer.strip())
            for f in faq
        ]
        parts.append("\n\n".join([texts.SYSTEM_FAQ_HEADER, *entries]))
    else:
        parts.append(texts.SYSTEM_NO_FAQ)
    return "\n\n".join(parts)


def _render_builtin(system: str, turns: Sequence[ChatTurn], attributes: dict[str, int], bos: str, eos: str) -> str:
    attr = format_attributes(attributes)
    out: list[str] = []
    for index in range(0, len(turns), 2):
        user = turns[index].content
        if index == 0:
            user = f"<<SYS>>\n{system}\n<</SYS>>\n\n{user}"
        out.append(f"{bos}[INST] {user} [ATTR] {attr} [/ATTR] [/INST]")
        if index + 1 < len(turns):
            out.append(f" {turns[index + 1].content} {eos}")
    return "".join(out)


def _messages(system: str, turns: Sequence[ChatTurn], attributes: dict[str, int]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for turn in turns:
        message: dict[str, Any] = {"role": turn.role, "content": turn.content}
        if turn.role == "user":
            message.update(attributes)
        messages.append(message)
    return messages


def _apply_template(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[str, list[int]]:
    def run(msgs: list[dict[str, Any]]) -> tuple[str, list[int]]:
        text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ids = tokenizer.apply_chat_template(
            msgs,
            tokenize=True,
            add_generation_prompt=True,
            return_dict=False,
            sanitize_control_tokens=True,
            tokenizer_kwargs={"verbose": False},
        )
        return text, list(ids)

    try:
        return run(messages)
    except Exception as exc:  # jinja raises its own TemplateError; some templates refuse a system message
        if "system" not in str(exc).lower():
            raise
    # A template without a system role: the system text opens the first user message instead.
    folded = [dict(m) for m in messages[1:]]
    folded[0]["content"] = messages[0]["content"] + "\n\n" + folded[0]["content"]
    return run(folded)


def _skeleton(turns: Sequence[ChatTurn]) -> list[ChatTurn]:
    return [ChatTurn(role=t.role, content="x") for t in turns]


def _control_counts(ids: Sequence[int], control: set[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for token_id in ids:
        if token_id in control:
            counts[token_id] = counts.get(token_id, 0) + 1
    return counts


@dataclass
class _Renderer:
    tokenizer: Any
    attributes: dict[str, int]
    confident: bool
    is_first_reply: bool

    def __post_init__(self) -> None:
        tok = self.tokenizer
        self.uses_template = bool(tok is not None and getattr(tok, "chat_template", None))
        self.control = _control_ids(tok) if tok is not None else set()
        self.bos = (getattr(tok, "bos_token", None) or BUILTIN_BOS) if tok is not None else BUILTIN_BOS
        self.eos = (getattr(tok, "eos_token", None) or BUILTIN_EOS) if tok is not None else BUILTIN_EOS

    def render(self, turns: Sequence[ChatTurn], faq: Sequence[FaqContext]) -> tuple[str, list[int] | None, list]:
        system = system_text(faq, confident=self.confident, is_first_reply=self.is_first_reply)
        messages = _messages(system, turns, self.attributes)
        if self.uses_template:
            text, ids = _apply_template(self.tokenizer, messages)
            _, skeleton_ids = _apply_template(self.tokenizer, _messages("x", _skeleton(turns), self.attributes))
            self._check(ids, _control_counts(skeleton_ids, self.control))
            return text, ids, messages
        text = _render_builtin(system, turns, self.attributes, self.bos, self.eos)
        if self.tokenizer is None:
            return text, None, messages
        # verbose=False: a prompt over the model's length is normal here, before it is fitted.
        ids = list(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
        expected: dict[int, int] = {}
        for token, count in (
            (self.tokenizer.bos_token_id, (len(turns) + 1) // 2),
            (self.tokenizer.eos_token_id, len(turns) // 2),
        ):
            if token is not None and count:
                expected[token] = expected.get(token, 0) + count
        self._check(ids, expected)
        return text, ids, messages

    def _check(self, ids: Sequence[int], expected: dict[int, int]) -> None:
        found = _control_counts(ids, self.control)
        if found != expected:
            raise UnsafePrompt(f"control tokens in the rendered prompt {found} differ from the format's {expected}")


def render_prompt(
    request: ReplyRequest, *, tokenizer: Any = None, max_prompt_tokens: int | None = None
) -> RenderedPrompt:
    """Render `request` for the model, fitted to `max_prompt_tokens` (tokens, or characters without a tokenizer).

    To fit: drop the oldest turns first (in user/assistant pairs, so the roles still alternate), then the weakest
    FAQ entries down to the best one, then shorten the best FAQ answer, then the customer's message; text is only
    ever cut between characters, preferably after a sentence. Raises PromptTooLong when even that does not fit.
    """
    attributes = resolve_attributes(request.attributes)
    specials = _tokenizer_specials(tokenizer)
    turns = _alternating(
        [ChatTurn(role=t.role, content=sanitize_text(t.content, special_tokens=specials)) for t in request.turns]
    )
    faq = [
        FaqContext(
            faq_id=sanitize_text(f.faq_id, special_tokens=specials),
            question=sanitize_text(f.question, special_tokens=specials),
            answer=sanitize_text(f.answer, special_tokens=specials),
            score=f.score,
        )
        for f in (request.faq if request.confident else ())
    ]
    renderer = _Renderer(tokenizer, attributes, request.confident, request.is_first_reply)

    def build(turns: Sequence[ChatTurn], faq: Sequence[FaqContext], **extra: Any) -> RenderedPrompt:
        text, ids, messages = renderer.render(turns, faq)
        return RenderedPrompt(
            text=text,
            token_ids=None if ids is None else tuple(ids),
            format=CHAT_TEMPLATE_FORMAT if renderer.uses_template else BUILTIN_FORMAT,
            attributes=attributes,
            messages=tuple(messages),
            faq_ids=tuple(f.faq_id for f in faq),
            n_tokens=len(text) if ids is None else len(ids),
            stop=(renderer.eos, "[INST]"),
            **extra,
        )

    prompt = build(turns, faq)
    if max_prompt_tokens is None or prompt.n_tokens <= max_prompt_tokens:
        return prompt

    def fits(p: RenderedPrompt) -> bool:
        return p.n_tokens <= max_prompt_tokens

    dropped_turns = 0
    while len(turns) > 1 and not fits(prompt):
        turns = turns[2:]
        dropped_turns += 2
        prompt = build(turns, faq, dropped_turns=dropped_turns)
    dropped_faq: list[str] = []
    while len(faq) > 1 and not fits(prompt):
        weakest = min(range(len(faq)), key=lambda i: (faq[i].score, -i))
        dropped_faq.append(faq[weakest].faq_id)
        faq = faq[:weakest] + faq[weakest + 1 :]
        prompt = build(turns, faq, dropped_turns=dropped_turns, dropped_faq_ids=tuple(dropped_faq))
    if fits(prompt):
        return prompt

    extra = {"dropped_turns": dropped_turns, "dropped_faq_ids": tuple(dropped_faq), "truncated": True}
    last = turns[-1]
    if faq:
        best = faq[0]
        keep = _longest_prefix(len(best.answer), lambda n: fits(build(turns, [_cut_faq(best, n)], **extra)))
        if keep is not None:
            return build(turns, [_cut_faq(best, keep)], **extra)
    # The customer's message itself is too long: shorten it, with the best FAQ answer whole if possible.
    for kept_faq in (faq, [_cut_faq(f, 0) for f in faq[:1]]):

        def fits_with(n: int, kept: Sequence[FaqContext] = kept_faq) -> bool:
            return fits(build([_cut_turn(last, n)], kept, **extra))

        keep = _longest_prefix(len(last.content), fits_with)
        if keep is not None:
            return build([_cut_turn(last, keep)], kept_faq, **extra)
    raise PromptTooLong(f"the system text alone needs more than {max_prompt_tokens} tokens")


def _longest_prefix(length: int, ok: Any) -> int | None:
    """The largest n in [1, length] with ok(n), by bisection (token counts grow with the prefix)."""
    low, high, best = 1, length, None
    while low <= high:
        mid = (low + high) // 2
        if ok(mid):
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def _cut(text: str, n: int) -> str:
    """The first n characters, ending after a sentence when one ends in the last third, then an ellipsis."""
    if n >= len(text):
        return text
    head = text[:n]
    for mark in ("。", "\n"):
        at = head.rfind(mark)
        if at >= n * 2 // 3:
            head = head[: at + 1]
            break
    return head.rstrip() + _ELLIPSIS if n else ""


def _cut_faq(entry: FaqContext, n: int) -> FaqContext:
    # The ellipsis costs a character; leave room so the cut version is no longer than the prefix that fitted.
    return replace(entry, answer=_cut(entry.answer, max(n - 1, 0)))


def _cut_turn(turn: ChatTurn, n: int) -> ChatTurn:
    return ChatTurn(role=turn.role, content=_cut(turn.content, max(n - 1, 1)))


# --- For `ask --show-prompt` and the backends ---------------------------------------------------------------


@cache
def load_tokenizer(model_dir: str) -> Any:
    """The tokenizer of a local model directory (never the hub); loaded once per process."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


def prompt_budget() -> int:
    """Tokens left for the prompt: the context length minus the room kept for the reply."""
    from django.conf import settings

    return settings.LLM_CONTEXT_TOKENS - settings.LLM_MAX_NEW_TOKENS


def configured_tokenizer() -> Any:
    from django.conf import settings

    model_dir: Path | None = settings.LLM_MODEL_DIR
    return load_tokenizer(str(model_dir)) if model_dir else None


def render_prompt_text(request: ReplyRequest) -> str:
    """The exact prompt text the configured model would be sent.

    Uses LLM_MODEL_DIR's tokenizer (and its chat template) when a model directory is configured, else the
    built-in 70B Chat format, so a site can review its prompt before the weights arrive.
    """
    return render_prompt(request, tokenizer=configured_tokenizer(), max_prompt_tokens=prompt_budget()).text


__all__ = [
    "ATTRIBUTE_NAMES",
    "BUILTIN_FORMAT",
    "CHAT_TEMPLATE_FORMAT",
    "RenderedPrompt",
    "load_tokenizer",
    "render_prompt",
    "render_prompt_text",
    "sanitize_text",
    "system_text",
]

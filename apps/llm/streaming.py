"""What every model backend does to its raw text stream before the reply pipeline sees it.

- Stop at a format marker: a model that starts writing the next turn ("[INST]", "</s>" as text) has finished its
  reply. Text that might be the beginning of a marker is held back until it is clear that it is not.
- Leading whitespace and control characters are dropped (the format puts a space after "[/INST]").
- No visible text at all is an error (BackendEmptyOutput), so the pipeline falls back instead of sending nothing.
- Closing the returned generator closes the backend's own generator, which is how generation gets cancelled.

Also the thread plumbing shared by the in-process backends (hf, neuron): generation runs in a worker thread and
checks a cancel flag every step; the consumer's generator sets it when closed or finished.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from apps.llm.errors import BackendEmptyOutput

# A model can emit any byte; control characters other than tab and newline never belong in a chat reply.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class StopTextFilter:
    """Cut a text stream at the first stop string, holding back a possible start of one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.buffer = ""
        self.started = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """Returns (text safe to emit now, whether a stop string was reached)."""
        self.buffer += piece
        if not self.started:
            self.buffer = self.buffer.lstrip()
            self.started = bool(self.buffer)
        cut = min((i for i in (self.buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self.buffer = self.buffer[:cut], ""
            return out, True
        hold = self._partial_stop_length()
        out = self.buffer[: len(self.buffer) - hold]
        self.buffer = self.buffer[len(self.buffer) - hold :]
        return out, False

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out

    def _partial_stop_length(self) -> int:
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.buffer)), 0, -1):
                if self.buffer.endswith(stop[:n]):
                    longest = max(longest, n)
                    break
        return longest


def clean_stream(pieces: Iterator[str], *, stops: Sequence[str], backend: str) -> Iterator[str]:
    """The backend's pieces, cut at a stop string, without leading whitespace; raises on empty output."""
    text_filter = StopTextFilter(stops)
    visible = False
    try:
        for piece in pieces:
            out, stopped = text_filter.feed(_CONTROL.sub("", piece))
            if out:
                visible = visible or bool(out.strip())
                yield out
            if stopped:
                break
        else:
            rest = text_filter.flush()
            if rest:
                visible = visible or bool(rest.strip())
                yield rest
    finally:
        # Closing the backend's generator is what stops its generation (early stop, customer gone, error).
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
    if not visible:
        raise BackendEmptyOutput("the model produced no text", backend=backend)


@dataclass
class GenerationRun:
    """One generation in a worker thread: its cancel flag, deadline, progress and outcome."""

    prompt_tokens: int
    deadline: float
    cancel: threading.Event = field(default_factory=threading.Event)
    generated_tokens: int = 0
    timed_out: bool = False
    finished: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    thread: threading.Thread | None = None

    def should_stop(self, total_tokens: int | None = None) -> bool:
        """Called by the model's loop once per step (with the sequence length so far, when it is known)."""
        if total_tokens is not None:
            self.generated_tokens = max(total_tokens - self.prompt_tokens, 0)
        if time.monotonic() > self.deadline:
            self.timed_out = True
        return self.cancel.is_set() or self.timed_out

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

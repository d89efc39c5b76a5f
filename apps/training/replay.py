"""Replay mixing: lines of a general text corpus sampled into a batch so the model keeps what it knew.

A corpus is a file or a folder of files (`*.jsonl` with {"text": ...} per line, or `*.txt` with one passage
per line; a folder is read in sorted path order). Non-blank lines are numbered across the whole corpus; the
sample is `random.Random(seed).sample` of those numbers, read back in one streaming pass, so the same corpus
and seed always give the same lines and memory holds only the chosen line numbers. A corpus smaller than the
sample is used whole as many times as it fits, plus a sample of the rest.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

SUFFIXES = (".jsonl", ".txt")


class ReplayCorpusError(ValueError):
    """The corpus cannot be read: missing, empty, or a line that is not what its file type promises."""


def corpus_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
        if files:
            return files
        raise ReplayCorpusError(f"{path}: no {' or '.join(SUFFIXES)} files")
    raise ReplayCorpusError(f"{path}: no such file or folder")


def _lines(files: list[Path]) -> Iterator[tuple[Path, int, str]]:
    for file in files:
        with open(file, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if line.strip():
                    yield file, number, line


def corpus_size(files: list[Path]) -> int:
    return sum(1 for _ in _lines(files))


def sample_counts(size: int, wanted: int, seed: int) -> Counter:
    """How many times each corpus line number is taken."""
    rng = random.Random(seed)
    counts: Counter = Counter()
    if size <= 0 or wanted <= 0:
        return counts
    whole, rest = divmod(wanted, size)
    if whole:
        counts.update({i: whole for i in range(size)})
    counts.update(rng.sample(range(size), rest))
    return counts


def sampled_texts(files: list[Path], counts: Counter) -> Iterator[str]:
    """The chosen passages in corpus order, each as often as it was taken."""
    if not counts:
        return
    for index, (file, number, line) in enumerate(_lines(files)):
        times = counts.get(index)
        if not times:
            continue
        if file.suffix == ".jsonl":
            try:
                text = json.loads(line)["text"]
            except (ValueError, KeyError, TypeError):
                raise ReplayCorpusError(f'{file}:{number}: expected a JSON object with a "text" string') from None
            if not isinstance(text, str):
                raise ReplayCorpusError(f'{file}:{number}: expected a JSON object with a "text" string')
        else:
            text = line.rstrip("\r\n")
        for _ in range(times):
            yield text


def replay_count(examples: int, ratio: float) -> int:
    """Replay lines so that they make up `ratio` of a training file holding `examples` examples."""
    if ratio <= 0 or examples <= 0:
        return 0
    return round(examples * ratio / (1 - ratio))

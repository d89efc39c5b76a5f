"""Exact and near-duplicate detection for exported examples.

Exact: the same text after NFKC and whitespace folding. Near: the estimated Jaccard similarity of the two
texts' character-trigram sets (punctuation and spaces removed, NFKC, lower case) is at least `similarity`,
estimated by MinHash with 64 hash functions. Candidates come from locality-sensitive hashing (8 bands of 8
values): a pair shares a band with probability 0.77 at similarity 0.8, 0.92 at 0.85 and 0.99 at 0.9, while
unrelated texts that share polite phrases (similarity 0.3) almost never do, which keeps the lookups cheap. The signatures are computed a chunk of texts at a time with numpy, because
a Python loop per character would dominate an export of 100,000 examples.

Memory stays small: 16 bytes per exact key, 256 bytes per signature and 96 bytes of band keys per kept text.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np

_SPACE = re.compile(r"\s+")
# Punctuation, symbols and spaces do not make two answers different.
_NOISE = re.compile(r"[\s\W_]+")
PERMUTATIONS = 64
BANDS = 8
_ROWS = PERMUTATIONS // BANDS
# Fixed, so the same texts always get the same signatures (a retried export drops the same examples).
_rng = np.random.default_rng(20240131)
_A = (_rng.integers(1, 2**32, PERMUTATIONS, dtype=np.uint64) | 1).astype(np.uint32)[:, None]
_B = _rng.integers(0, 2**32, PERMUTATIONS, dtype=np.uint64).astype(np.uint32)[:, None]


def exact_key(text: str) -> bytes:
    folded = _SPACE.sub(" ", unicodedata.normalize("NFKC", text)).strip()
    return hashlib.blake2b(folded.encode("utf-8"), digest_size=16).digest()


def _near_form(text: str) -> str:
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).lower()).replace("\x00", "")


def minhash_signatures(texts: Sequence[str]) -> np.ndarray:
    """One row of PERMUTATIONS uint32 minima per text, over the trigrams of its near form."""
    forms = [_near_form(t) for t in texts]
    out = np.empty((len(forms), PERMUTATIONS), dtype=np.uint32)
    if not forms:
        return out
    with np.errstate(over="ignore"):
        points = np.frombuffer("\x00".join(forms).encode("utf-32-le"), dtype=np.uint32)
        lengths = np.fromiter((len(f) for f in forms), dtype=np.int64, count=len(forms))
        long_enough = lengths >= 3
        if long_enough.any():
            trigrams = points[:-2] * np.uint32(0x9E3779B1) ^ points[1:-1] * np.uint32(0x85EBCA77) ^ points[2:]
            trigrams ^= trigrams >> np.uint32(15)
            trigrams *= np.uint32(0x2C1B3C6D)
            trigrams ^= trigrams >> np.uint32(12)
            separator = points == 0
            inside = np.nonzero(~(separator[:-2] | separator[1:-1] | separator[2:]))[0]
            text_starts = np.concatenate(([0], np.cumsum(lengths + 1)[:-1]))
            segment_starts = np.searchsorted(inside, text_starts[long_enough])
            hashed = _A * trigrams[inside][None, :] + _B
            out[long_enough] = np.minimum.reduceat(hashed, segment_starts, axis=1).T
        for index in np.nonzero(~long_enough)[0]:
            # Too short for trigrams: one shingle, the whole form.
            shingle = np.uint32(zlib.crc32(forms[index].encode("utf-8")))
            out[index] = (_A[:, 0] * shingle + _B[:, 0]).astype(np.uint32)
    return out


class Deduper:
    """Remembers what was kept; `check_many` says, text by text, whether each duplicates an earlier one.

    `similarity` 1.0 turns near-duplicate detection off (exact only). The band keys of kept texts live in
    sorted numpy arrays, so a chunk of texts is looked up with one `searchsorted` per band and memory is 12
    bytes per band per kept text, instead of a dictionary entry each.
    """

    def __init__(self, *, similarity: float = 0.8) -> None:
        self.similarity = similarity
        self.near = similarity < 1.0
        self._exact: set[bytes] = set()
        self._signatures = np.empty((1024, PERMUTATIONS), dtype=np.uint32)
        self._kept = 0
        self._band_keys = [np.empty(0, dtype=np.uint64) for _ in range(BANDS)]
        self._band_rows = [np.empty(0, dtype=np.int64) for _ in range(BANDS)]

    def check(self, text: str, signature: np.ndarray | None = None) -> Literal["exact", "near"] | None:
        signatures = None if signature is None else signature[None, :]
        return self.check_many([text], signatures)[0]

    def check_many(self, texts: Sequence[str], signatures: np.ndarray | None) -> list[Literal["exact", "near"] | None]:
        """Verdicts in order, as if each text were checked after the ones before it (earlier kept ones win)."""
        near = self.near and signatures is not None and len(texts) > 0
        candidates: list[set[int]] = [set() for _ in texts]
        needed = int(np.ceil(self.similarity * PERMUTATIONS - 1e-9))
        if near:
            keys = _band_keys(signatures)
            key_lists = keys.tolist()  # Python ints: indexing numpy scalars one by one is slow
            for band in range(BANDS):
                kept_keys, kept_rows = self._band_keys[band], self._band_rows[band]
                low = np.searchsorted(kept_keys, keys[:, band], side="left")
                high = np.searchsorted(kept_keys, keys[:, band], side="right")
                for index in np.nonzero(high > low)[0]:
                    candidates[index].update(kept_rows[low[index] : high[index]].tolist())
        verdicts: list[Literal["exact", "near"] | None] = []
        chunk_rows: list[int] = []  # row in self._signatures of each text kept from this chunk
        chunk_kept: dict[tuple[int, int], list[int]] = {}  # (band, key) → rows kept from this chunk
        for index, text in enumerate(texts):
            key = exact_key(text)
            if key in self._exact:
                verdicts.append("exact")
                continue
            if near:
                signature = signatures[index]
                found = candidates[index]
                band_keys = key_lists[index]
                for band in range(BANDS):
                    found.update(chunk_kept.get((band, band_keys[band]), ()))
                if found:
                    rows = self._signatures[list(found)]
                    if np.count_nonzero(rows == signature, axis=1).max() >= needed:
                        verdicts.append("near")
                        continue
                row = self._keep(signature)
                chunk_rows.append(index)
                for band in range(BANDS):
                    chunk_kept.setdefault((band, band_keys[band]), []).append(row)
            self._exact.add(key)
            verdicts.append(None)
        if near and chunk_rows:
            first_row = self._kept - len(chunk_rows)
            rows = np.arange(first_row, self._kept, dtype=np.int64)
            for band in range(BANDS):
                new_keys = keys[chunk_rows, band]
                order = np.argsort(new_keys, kind="stable")
                at = np.searchsorted(self._band_keys[band], new_keys[order])
                self._band_keys[band] = np.insert(self._band_keys[band], at, new_keys[order])
                self._band_rows[band] = np.insert(self._band_rows[band], at, rows[order])
        return verdicts

    def _keep(self, signature: np.ndarray) -> int:
        if self._kept == len(self._signatures):
            self._signatures = np.concatenate([self._signatures, np.empty_like(self._signatures)])
        self._signatures[self._kept] = signature
        self._kept += 1
        return self._kept - 1


_BAND_MULTIPLIERS = (_rng.integers(1, 2**63, _ROWS, dtype=np.uint64) | 1)[None, None, :]


def _band_keys(signatures: np.ndarray) -> np.ndarray:
    """One 64-bit key per band of each signature (equal bands, equal keys)."""
    with np.errstate(over="ignore"):
        bands = signatures.reshape(len(signatures), BANDS, _ROWS).astype(np.uint64) * _BAND_MULTIPLIERS
        return np.bitwise_xor.reduce(bands, axis=2) if _ROWS > 1 else bands[:, :, 0]

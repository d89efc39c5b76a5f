"""The FAQ search index: built from the database, saved atomically on disk with the KB revision it reflects,
loaded by every web and worker process, and kept current without a restart.

On disk, under FAQ_INDEX_DIR::

    CURRENT                 name of the live version directory (replaced atomically)
    v<revision>-<build>/    manifest.json, entries.json, phrase.faiss, doc.faiss, phrase_owner.npy,
                            bm25/ (bm25s arrays), term_max.npy
    .lock                   serialises builders across processes

What is indexed for each active entry:

- one "phrase" vector for the question and one for each alternative phrasing (embedded like a query, since a
  customer's question and an FAQ question are the same kind of text);
- one "doc" vector for question + answer (embedded as a passage);
- one BM25 document of question + phrasings + answer terms (`apps.faq.text.text_tokens`).

`index_update` diffs the database against the live index and rebuilds only what changed: terms are reused
for entries whose text did not change, and embeddings come from the on-disk embedding cache, so an edit to
one entry embeds only that entry. The new version is written to a temporary directory and made live by one
atomic rename of CURRENT; if anything fails before that, the last good index keeps serving.

Up to FAQ_INDEX_EXACT_MAX vectors the FAISS indexes are exact (IndexFlatIP); above it they are HNSW graphs
(see bench/bench_retrieval.py for recall against exact search).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from django.conf import settings
from django.db import transaction

from apps.faq.embedders import CachedEmbedder, embedder_get
from apps.faq.text import text_normalize, text_tokens, tokenizer_version

log = logging.getLogger(__name__)

FORMAT = 1
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
# efSearch grows with the graph: one per 100 vectors, between 300 (the candidates faq_search takes, which FAISS
# explores at least) and 1000. Measured on near-duplicate synthetic entries (bench/bench_retrieval.py,
# docs/retrieval.md): at 100k entries (230k phrase vectors) efSearch 300 / 500 / 1000 gave recall@10 0.974 / 0.989
# / 1.000 against brute force, so the largest graphs get 1000; at 10k entries (23k phrase vectors) 300 already
# gave 1.000, for 2.6 ms a query's two searches instead of 6.0 ms at 1000. efConstruction 80 / efSearch 320 gave
# 0.91 at 100k; efConstruction 200 is what makes the graphs that good.
HNSW_EF_SEARCH_MIN = 300
HNSW_EF_SEARCH_MAX = 1000


def hnsw_ef_search(vectors: int) -> int:
    """The efSearch an HNSW graph of this many vectors is searched with."""
    return int(min(HNSW_EF_SEARCH_MAX, max(HNSW_EF_SEARCH_MIN, vectors // 100)))


BM25_K1 = 1.2
BM25_B = 0.75
_KEEP_OLD_VERSIONS = 2


@dataclass
class IndexedEntry:
    external_id: str
    question: str
    answer: str
    category: str
    revision: int
    text_hash: str
    terms: list[str]


@dataclass
class FaqIndex:
    """One loaded, immutable version of the index. Safe to search from many threads."""

    path: Path
    revision: int
    model_id: str
    tokenizer: str
    entries: list[IndexedEntry]
    phrase_index: faiss.Index
    phrase_owner: np.ndarray  # phrase row -> entry position
    doc_index: faiss.Index  # row i is entry i
    bm25: object  # bm25s.BM25
    term_max: np.ndarray  # best BM25 score of each term over all entries, for scaling scores to [0, 1]
    manifest: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.entries)

    def phrase_vectors(self) -> np.ndarray:
        return _stored_vectors(self.phrase_index)

    def doc_vectors(self) -> np.ndarray:
        return _stored_vectors(self.doc_index)


@dataclass
class IndexUpdateReport:
    revision: int
    entries: int
    changed: int  # entries whose text differs from the previous index (all of them on a first build)
    removed: int
    embedded: int  # texts the model actually embedded (the rest came from the cache)
    seconds: float
    skipped: bool = False  # nothing to do: the live index already matched the database
    path: Path | None = None


def _stored_vectors(index: faiss.Index) -> np.ndarray:
    """A numpy view of the vectors a flat or HNSW index stores (no copy)."""
    flat = faiss.downcast_index(index.storage) if isinstance(index, faiss.IndexHNSW) else index
    n, d = flat.ntotal, flat.d
    if n == 0:
        return np.zeros((0, d), dtype=np.float32)
    return faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)


def _index_dir() -> Path:
    return Path(settings.FAQ_INDEX_DIR)


def entry_text_hash(*, question: str, alt_questions: list[str], answer: str, category: str) -> str:
    payload = json.dumps([question, list(alt_questions), answer, category], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_phrasings(question: str, alt_questions: list[str]) -> list[str]:
    seen: list[str] = []
    for text in [question, *alt_questions]:
        text = text_normalize(text)
        if text and text not in seen:
            seen.append(text)
    return seen or [" "]


def entry_doc_text(question: str, answer: str) -> str:
    return text_normalize(f"{question}\n{answer}")


# --- building ---------------------------------------------------------------------------------------------


def index_update(
    *,
    target_revision: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    from_scratch: bool = False,
) -> IndexUpdateReport:
    """Bring the on-disk index up to the database, re-embedding only entries whose text changed.

    `target_revision` is the revision a caller knows was committed (the Celery task passes it); the database is
    diffed either way, so a late or repeated call is harmless. `progress(done, total)` is called as entry texts
    are embedded. `from_scratch` re-tokenises everything and builds even when nothing changed (embeddings
    still come from the cache). Raises on failure, leaving the last good index live.
    """
    from apps.faq.models import FaqEntry
    from apps.faq.services import kb_revision_current

    started = time.perf_counter()
    root = _index_dir()
    root.mkdir(parents=True, exist_ok=True)
    with _build_lock(root):
        with transaction.atomic():
            revision = kb_revision_current()
            rows = list(
                FaqEntry.objects.filter(is_active=True)
                .order_by("external_id")
                .values("external_id", "question", "alt_questions", "answer", "category", "revision")
            )
        if target_revision is not None and target_revision > revision:
            log.warning("index_update: revision %s not visible yet (database at %s)", target_revision, revision)
        embedder = embedder_get()
        previous = None if from_scratch else _load_current(root)
        if previous is not None and (
            previous.model_id != embedder.model_id or previous.tokenizer != tokenizer_version()
        ):
            previous = None  # a different model or tokenizer: nothing of the old index can be reused
        old = {e.external_id: e for e in previous.entries} if previous else {}
        hashes = [
            entry_text_hash(
                question=r["question"],
                alt_questions=r["alt_questions"] or [],
                answer=r["answer"],
                category=r["category"],
            )
            for r in rows
        ]
        changed = sum(
            1
            for r, h in zip(rows, hashes, strict=True)
            if old.get(r["external_id"], None) is None or old[r["external_id"]].text_hash != h
        )
        removed = len(set(old) - {r["external_id"] for r in rows})
        if previous is not None and previous.revision == revision and not changed and not removed:
            return IndexUpdateReport(
                revision=revision,
                entries=len(rows),
                changed=0,
                removed=0,
                embedded=0,
                seconds=time.perf_counter() - started,
                skipped=True,
                path=previous.path,
            )
        computed_before = embedder.computed
        path = _build_and_save(root, rows, hashes, old, revision, embedder, progress)
        _set_current(root, path)
        _remove_old_versions(root, keep=path.name)
    report = IndexUpdateReport(
        revision=revision,
        entries=len(rows),
        changed=changed,
        removed=removed,
        embedded=embedder.computed - computed_before,
        seconds=time.perf_counter() - started,
        path=path,
    )
    log.info(
        "FAQ index r%s: %s entries, %s changed, %s embedded in %.2fs",
        revision,
        len(rows),
        changed,
        report.embedded,
        report.seconds,
    )
    return report


def _build_and_save(root, rows, hashes, old, revision, embedder: CachedEmbedder, progress) -> Path:
    import bm25s

    entries: list[IndexedEntry] = []
    phrase_texts: list[str] = []
    phrase_owner: list[int] = []
    doc_texts: list[str] = []
    for position, (row, text_hash) in enumerate(zip(rows, hashes, strict=True)):
        alts = [a for a in (row["alt_questions"] or []) if isinstance(a, str)]
        previous = old.get(row["external_id"])
        if previous is not None and previous.text_hash == text_hash:
            terms = previous.terms
        else:
            terms = text_tokens(" ".join([row["question"], *alts, row["answer"]]))
        entries.append(
            IndexedEntry(
                external_id=row["external_id"],
                question=row["question"],
                answer=row["answer"],
                category=row["category"],
                revision=row["revision"],
                text_hash=text_hash,
                terms=terms,
            )
        )
        for phrasing in entry_phrasings(row["question"], alts):
            phrase_texts.append(phrasing)
            phrase_owner.append(position)
        doc_texts.append(entry_doc_text(row["question"], row["answer"]))

    total = len(phrase_texts) * len(embedder.parts_for("query")) + len(doc_texts) * len(embedder.parts_for("passage"))
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    phrase_vecs = embedder.embed(phrase_texts, "query", progress=tick)
    doc_vecs = embedder.embed(doc_texts, "passage", progress=tick)

    bm25 = bm25s.BM25(k1=BM25_K1, b=BM25_B)
    corpus = [e.terms or [""] for e in entries]
    if corpus:
        bm25.index(corpus, show_progress=False)
        term_max = _term_max(bm25)
    else:
        term_max = np.zeros(0, dtype=np.float32)

    tmp = root / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        exact_max = settings.FAQ_INDEX_EXACT_MAX
        faiss.write_index(_faiss_index(phrase_vecs, exact=len(phrase_vecs) <= exact_max), str(tmp / "phrase.faiss"))
        faiss.write_index(_faiss_index(doc_vecs, exact=len(doc_vecs) <= exact_max), str(tmp / "doc.faiss"))
        np.save(tmp / "phrase_owner.npy", np.asarray(phrase_owner, dtype=np.int32))
        np.save(tmp / "term_max.npy", term_max)
        if corpus:
            bm25.save(str(tmp / "bm25"), show_progress=False)
        with open(tmp / "entries.json", "w", encoding="utf-8") as fh:
            json.dump([e.__dict__ for e in entries], fh, ensure_ascii=False)
        manifest = {
            "format": FORMAT,
            "revision": revision,
            "model_id": embedder.model_id,
            "dim": embedder.dim,
            "tokenizer": tokenizer_version(),
            "entries": len(entries),
            "phrase_vectors": len(phrase_texts),
            "index_kind": "flat" if len(phrase_vecs) <= exact_max else "hnsw",
            "created_at": time.time(),
        }
        # The manifest is written last: a directory without one is never loaded.
        with open(tmp / "manifest.json", "w", encoding="utf-8") as fh:
            json.dump(manifest, fh)
            fh.flush()
            os.fsync(fh.fileno())
        final = root / f"v{revision}-{uuid.uuid4().hex[:8]}"
        os.rename(tmp, final)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _faiss_index(vectors: np.ndarray, *, exact: bool) -> faiss.Index:
    dim = vectors.shape[1]
    if exact:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    if not exact:
        index.hnsw.efSearch = hnsw_ef_search(index.ntotal)
    return index


def _term_max(bm25) -> np.ndarray:
    data, indptr = bm25.scores["data"], bm25.scores["indptr"]
    out = np.zeros(len(indptr) - 1, dtype=np.float32)
    nonempty = np.flatnonzero(np.diff(indptr) > 0)
    if len(nonempty):
        out[nonempty] = np.maximum.reduceat(data, indptr[:-1][nonempty])
    return out


def _set_current(root: Path, path: Path) -> None:
    tmp = root / f".CURRENT-{uuid.uuid4().hex}"
    with open(tmp, "w") as fh:
        fh.write(path.name)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / "CURRENT")
    with contextlib.suppress(OSError):
        fd = os.open(root, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def _remove_old_versions(root: Path, *, keep: str) -> None:
    # A process may still be loading a version that just stopped being current, so the last few stay.
    versions = sorted((p for p in root.glob("v*-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for path in versions[: max(0, len(versions) - _KEEP_OLD_VERSIONS - 1)]:
        if path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".tmp-*"):
        # Left by a builder that died; builders hold the lock, so none is running now.
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _build_lock(root: Path):
    with open(root / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --- loading ----------------------------------------------------------------------------------------------


def index_load(path: Path) -> FaqIndex:
    """Load one saved version directory."""
    import bm25s

    with open(path / "manifest.json", encoding="utf-8") as fh:
        manifest = json.load(fh)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: index format {manifest.get('format')} is not {FORMAT}")
    with open(path / "entries.json", encoding="utf-8") as fh:
        entries = [IndexedEntry(**e) for e in json.load(fh)]
    phrase_index = faiss.read_index(str(path / "phrase.faiss"))
    doc_index = faiss.read_index(str(path / "doc.faiss"))
    for index in (phrase_index, doc_index):
        if isinstance(index, faiss.IndexHNSW):
            index.hnsw.efSearch = hnsw_ef_search(index.ntotal)
    bm25 = bm25s.BM25.load(str(path / "bm25"), show_progress=False) if entries else None
    return FaqIndex(
        path=path,
        revision=int(manifest["revision"]),
        model_id=manifest["model_id"],
        tokenizer=manifest["tokenizer"],
        entries=entries,
        phrase_index=phrase_index,
        phrase_owner=np.load(path / "phrase_owner.npy"),
        doc_index=doc_index,
        bm25=bm25,
        term_max=np.load(path / "term_max.npy"),
        manifest=manifest,
    )


def _load_current(root: Path) -> FaqIndex | None:
    try:
        name = (root / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    try:
        return index_load(root / name)
    except Exception:
        log.exception("FAQ index %s could not be loaded", root / name)
        return None


class _Live:
    """The index this process serves, swapped when CURRENT changes on disk. One stat() per search."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root: Path | None = None
        self._stamp: tuple | None = None
        self._index: FaqIndex | None = None

    def get(self) -> FaqIndex | None:
        root = _index_dir()
        try:
            st = os.stat(root / "CURRENT")
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if root == self._root and stamp == self._stamp:
            return self._index
        with self._lock:
            if root == self._root and stamp == self._stamp:
                return self._index
            if root != self._root:
                self._index = None
            if stamp is not None:
                loaded = _load_current(root)
                # A version that fails to load is skipped: keep serving the last good one.
                if loaded is not None:
                    self._index = loaded
            self._root, self._stamp = root, stamp
            return self._index

    def reset(self) -> None:
        with self._lock:
            self._root = self._stamp = self._index = None


live_index = _Live()

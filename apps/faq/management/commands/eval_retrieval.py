"""`python manage.py eval_retrieval FILE [--json]`: measure retrieval on a JSONL set of queries.

Each line is ``{"query": "...", "relevant": ["<faq id>", ...]}``; ``relevant: []`` marks a query no FAQ answers.
Prints hit@1, hit@5, hit@10 and MRR@10 over the answerable queries, query latency p50/p95, and for the
confidence threshold: how often the pipeline answers, how often its top FAQ is right when it does, and how
many unanswerable queries it correctly declines.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from karakuri_cs.commands import database_ready_or_fail


def read_queries(path: Path) -> list[dict]:
    """Read and validate an evaluation file; raises CommandError naming the bad line."""
    queries = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CommandError(f"{path}:{number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("query"), str):
            raise CommandError(f'{path}:{number}: expected {{"query": "...", "relevant": [...]}}')
        relevant = record.get("relevant", [])
        if not isinstance(relevant, list) or not all(isinstance(r, str) for r in relevant):
            raise CommandError(f"{path}:{number}: relevant must be a list of FAQ ids")
        queries.append({"query": record["query"], "relevant": relevant})
    if not queries:
        raise CommandError(f"{path}: no queries")
    return queries


def retrieval_evaluate(queries: list[dict], *, k: int = 10) -> dict:
    """Run every query through `faq_search` and return the figures (see the module docstring)."""
    from apps.faq.search import faq_search

    faq_search("ウォームアップ", k=1)  # loads the models, so the first timed query is not an outlier
    threshold = settings.FAQ_CONFIDENCE_THRESHOLD
    ranks, latencies = [], []
    answered_right = answered_wrong = declined_unanswerable = unanswerable = answered_answerable = 0
    revision = 0
    for q in queries:
        result = faq_search(q["query"], k=k)
        revision = result.kb_revision
        latencies.append(result.took_ms)
        ids = [h.external_id for h in result.hits]
        relevant = set(q["relevant"])
        if relevant:
            rank = next((i + 1 for i, x in enumerate(ids) if x in relevant), None)
            ranks.append(rank)
            if result.confident:
                answered_answerable += 1
                if rank == 1:
                    answered_right += 1
                else:
                    answered_wrong += 1
        else:
            unanswerable += 1
            if result.confident:
                answered_wrong += 1
            else:
                declined_unanswerable += 1
    answerable = len(ranks)
    answered = answered_right + answered_wrong

    def hit(n: int) -> float | None:
        return sum(1 for r in ranks if r is not None and r <= n) / answerable if answerable else None

    return {
        "queries": len(queries),
        "answerable": answerable,
        "unanswerable": unanswerable,
        "kb_revision": revision,
        "embedder": settings.FAQ_EMBEDDER,
        "hit@1": hit(1),
        "hit@5": hit(5),
        "hit@10": hit(10),
        "mrr@10": sum(1 / r for r in ranks if r is not None and r <= 10) / answerable if answerable else None,
        "latency_ms_p50": float(np.percentile(latencies, 50)),
        "latency_ms_p95": float(np.percentile(latencies, 95)),
        "confidence_threshold": threshold,
        "answer_rate": answered / len(queries),
        "answer_rate_answerable": answered_answerable / answerable if answerable else None,
        "precision_when_answered": answered_right / answered if answered else None,
        "unanswerable_declined": declined_unanswerable / unanswerable if unanswerable else None,
    }


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


class Command(BaseCommand):
    help = "Evaluate FAQ retrieval on a JSONL file of {query, relevant} (hit@k, MRR@10, latency, confidence)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")

    def handle(self, *args, **options):
        database_ready_or_fail()
        from apps.faq.index import index_update
        from apps.faq.models import FaqEntry

        queries = read_queries(options["file"])
        # Labels that name no active entry mean the wrong knowledge base is loaded (say the evaluation set's
        # devset.jsonl against the 93-entry demo alone): every figure would be wrong, so refuse.
        labelled = {r for q in queries for r in q["relevant"]}
        known = set(
            FaqEntry.objects.filter(external_id__in=labelled, is_active=True).values_list("external_id", flat=True)
        )
        missing = sorted(labelled - known)
        if missing:
            raise CommandError(
                f"{len(missing)} FAQ ids in {options['file']} are not active entries of the knowledge base "
                f"({', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}): import the FAQ this set was labelled "
                "against first."
            )
        # The index normally follows the database through the `index` task; make sure it has caught up.
        index_update()
        figures = retrieval_evaluate(queries)
        if options["json"]:
            self.stdout.write(json.dumps(figures, ensure_ascii=False))
            return
        out = self.stdout.write
        out(
            f"{figures['queries']} queries ({figures['answerable']} answerable, {figures['unanswerable']} "
            f"unanswerable), KB r{figures['kb_revision']}, embedder {figures['embedder']}"
        )
        out(
            f"hit@1 {_fmt(figures['hit@1'])}   hit@5 {_fmt(figures['hit@5'])}   hit@10 {_fmt(figures['hit@10'])}   "
            f"MRR@10 {_fmt(figures['mrr@10'])}"
        )
        out(f"latency p50 {figures['latency_ms_p50']:.1f} ms   p95 {figures['latency_ms_p95']:.1f} ms")
        out(
            f"confidence threshold {figures['confidence_threshold']:.2f}: answers {_fmt(figures['answer_rate'])} of "
            f"all queries ({_fmt(figures['answer_rate_answerable'])} of answerable), top FAQ right when answering "
            f"{_fmt(figures['precision_when_answered'])}, declines {_fmt(figures['unanswerable_declined'])} of "
            "unanswerable"
        )

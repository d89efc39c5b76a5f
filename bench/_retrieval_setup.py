"""Set-up shared by the retrieval scripts: Django on a throwaway SQLite database, demo data, FAQ rows.

Each script runs in its own temporary data directory (database + index) so it never touches var/; the
embedding cache is shared with the app (var/cache unless FAQ_CACHE_DIR is set), so re-running a script over
the same text costs no model time.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench._common import django_setup  # noqa: F401  (the retrieval scripts import it from here)

ROOT = Path(__file__).resolve().parent.parent
DEMO_FAQ = ROOT / "apps" / "faq" / "demo" / "faq.jsonl"
DEMO_DEVSET = ROOT / "apps" / "faq" / "demo" / "devset.jsonl"
# The tuning set: the demo FAQ plus 419 more entries (512 in all, many of them near-misses of each other) and
# 777 queries labelled against all 512 (apps/faq/demo/eval/README.md).
EVAL_FAQ = (DEMO_FAQ, ROOT / "apps" / "faq" / "demo" / "eval" / "faq_more.jsonl")
EVAL_DEVSET = ROOT / "apps" / "faq" / "demo" / "eval" / "devset.jsonl"


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def faq_rows(records: list[dict], *, extra_phrasings: dict[str, list[str]] | None = None):
    from apps.faq.services import FaqRow

    extra_phrasings = extra_phrasings or {}
    return [
        FaqRow(
            external_id=r["id"],
            question=r["question"],
            answer=r["answer"],
            category=r.get("category", ""),
            tags=tuple(r.get("tags", [])),
            alt_questions=tuple(r.get("alt_questions", [])) + tuple(extra_phrasings.get(r["id"], [])),
        )
        for r in records
    ]


def load_faq(records: list[dict], **kwargs) -> None:
    from apps.faq.services import faq_entries_upsert

    faq_entries_upsert(rows=faq_rows(records, **kwargs), actor="bench")

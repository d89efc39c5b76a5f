"""Fixtures for the retrieval tests: a private index directory per test, the shared embedding cache, and the
demo knowledge base loaded through the one write path and indexed explicitly (tests run inside a rolled-back
transaction, where the after-commit index task never fires)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.faq.services import FaqRow, faq_entries_upsert

DEMO_DIR = Path(django_settings.BASE_DIR) / "apps" / "faq" / "demo"


def demo_rows() -> list[FaqRow]:
    with open(DEMO_DIR / "faq.jsonl", encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    return [
        FaqRow(
            external_id=r["id"],
            question=r["question"],
            answer=r["answer"],
            category=r.get("category", ""),
            tags=tuple(r.get("tags", [])),
            alt_questions=tuple(r.get("alt_questions", [])),
        )
        for r in records
    ]


@pytest.fixture
def index_dir(settings, tmp_path):
    """A fresh index directory for this test; embeddings still come from the shared cache."""
    settings.FAQ_INDEX_DIR = tmp_path / "index"
    if "FAQ_CACHE_DIR" not in os.environ:
        # Kept across sessions so re-embedding the demo text is free; it never changes a result.
        settings.FAQ_CACHE_DIR = Path(django_settings.BASE_DIR) / "var" / "test-embedding-cache"
    return settings.FAQ_INDEX_DIR


@pytest.fixture
def demo_faq(db, index_dir):
    """The demo company's FAQ, stored and indexed."""
    from apps.faq.index import index_update

    rows = demo_rows()
    faq_entries_upsert(rows=rows, actor="test")
    index_update()
    return {r.external_id: r for r in rows}

"""Fixtures for the retrieval tests: a private index directory per test, the shared embedding cache, and the
demo knowledge base loaded through the one write path and indexed explicitly (tests run inside a rolled-back
transaction, where the after-commit index task never fires)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.faq.importers import faq_file_parse
from apps.faq.services import FaqRow, faq_entries_upsert

DEMO_DIR = Path(django_settings.BASE_DIR) / "apps" / "faq" / "demo"

# Texts an embedder's two implementations (engine and PyTorch port) must agree on: customer spellings, English,
# emoji only, empty, one character, whitespace runs, special-token lookalikes, a passage-length text.
EMBEDDER_TEXTS = [
    "パスワードを忘れてしまいました",
    "ﾊﾟｽﾜｰﾄﾞわすれちゃった",
    "配送料はいくらですか？ 送料無料になる条件も教えてください。",
    "How do I cancel my subscription?",
    "🙏🙏🙏",
    "",
    "a",
    "   スペース   だらけ   ",
    "<s>[INST] 文字列としての特殊トークン </s>",
    "定期便の解約方法：マイページの「定期便の管理」から、次回お届け日の5日前までに手続きしてください。" * 3,
]


def demo_rows() -> list[FaqRow]:
    """The demo FAQ as the app's own importer reads it (what `manage.py run` loads)."""
    parsed = faq_file_parse(DEMO_DIR / "faq.jsonl")
    assert not parsed.errors, parsed.errors
    return [p.row for p in parsed.rows]


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

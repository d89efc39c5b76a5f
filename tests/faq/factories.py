"""Test data for the FAQ knowledge base: rows as the service takes them, entries written through the service."""

import factory

from apps.faq.models import FaqEntry
from apps.faq.services import FaqRow, UpsertReport, faq_entries_upsert


class FaqRowFactory(factory.Factory):
    class Meta:
        model = FaqRow

    external_id = factory.Sequence(lambda n: f"t-{n:04d}")
    question = factory.Sequence(lambda n: f"テスト用の質問その{n}はどうすればよいですか？")
    answer = "お手数ですが、マイページの「設定」から変更してください。"
    category = "accounts"
    tags = ("設定",)
    alt_questions = ()
    is_active = True


def faq_entries_create(*rows: FaqRow, actor: str = "test") -> UpsertReport:
    """Store rows through the one write path, as an import or the admin would."""
    return faq_entries_upsert(rows=rows, actor=actor, note="test data")


def faq_entry_create(**fields) -> FaqEntry:
    row = FaqRowFactory(**fields)
    faq_entries_create(row)
    return FaqEntry.objects.get(external_id=row.external_id)

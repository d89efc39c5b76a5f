"""Writes to the FAQ knowledge base. Every change (import, admin edit, console) goes through
`faq_entries_upsert`, which records one KB revision, keeps a version of each changed entry and schedules the
search-index update after the commit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Max

from apps.faq.models import FaqEntry, FaqEntryVersion, KbRevision

# Fields that define an entry's content; a row equal on all of them is "unchanged" and makes no revision.
CONTENT_FIELDS = ("question", "alt_questions", "answer", "category", "tags", "is_active")


@dataclass(frozen=True)
class FaqRow:
    """One FAQ entry as it arrives from a file, the admin or the console (already validated)."""

    external_id: str
    question: str
    answer: str
    category: str = ""
    tags: tuple[str, ...] = ()
    alt_questions: tuple[str, ...] = ()
    is_active: bool = True

    def content(self) -> dict:
        return {
            "question": self.question,
            "alt_questions": list(self.alt_questions),
            "answer": self.answer,
            "category": self.category,
            "tags": list(self.tags),
            "is_active": self.is_active,
        }


@dataclass
class UpsertReport:
    revision: int | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def kb_revision_current() -> int:
    """The current knowledge-base revision number (0 for an empty knowledge base)."""
    return KbRevision.objects.aggregate(n=Max("number"))["n"] or 0


def faq_entries_upsert(*, rows: Iterable[FaqRow], actor: str = "", note: str = "") -> UpsertReport:
    """Create or update entries by external id, all in one transaction and one KB revision.

    Rows identical to the stored entry are left alone; if nothing changed no revision is created.
    """
    report = UpsertReport()
    rows = list(rows)
    with transaction.atomic():
        existing = {
            e.external_id: e
            for e in FaqEntry.objects.select_for_update().filter(external_id__in=[r.external_id for r in rows])
        }
        changed: list[tuple[FaqEntry | None, FaqRow]] = []
        for row in rows:
            entry = existing.get(row.external_id)
            if entry is not None and all(getattr(entry, f) == v for f, v in row.content().items()):
                report.unchanged.append(row.external_id)
            else:
                changed.append((entry, row))
        if not changed:
            return report

        number = kb_revision_current() + 1
        KbRevision.objects.create(number=number, actor=actor, note=note[:300], entries_changed=len(changed))
        for entry, row in changed:
            if entry is None:
                entry = FaqEntry.objects.create(external_id=row.external_id, revision=number, **row.content())
                report.created.append(row.external_id)
            else:
                for name, value in row.content().items():
                    setattr(entry, name, value)
                entry.revision = number
                entry.save()
                report.updated.append(row.external_id)
            FaqEntryVersion.objects.create(entry=entry, revision=number, actor=actor, **row.content())
        report.revision = number
        transaction.on_commit(lambda: _index_update_after_commit(number))
    return report


def _index_update_after_commit(revision: int) -> None:
    # Imported lazily: the index module loads the embedder, which admin-only processes never need.
    from apps.faq.tasks import faq_index_update_task

    faq_index_update_task.delay(revision)

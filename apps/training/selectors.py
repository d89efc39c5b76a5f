"""Reads of the training app for the review screen, the batch pages and the queue API."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, QuerySet

from apps.training.models import ApiToken, ExportBatch, ReviewDecision, TrainingExample
from apps.training.texts_ja import LABELS


def example_next_for_review(*, skip: Iterable[int] = ()) -> TrainingExample | None:
    """The oldest pending example not in `skip` (the ones this reviewer skipped), with what the screen shows."""
    return (
        TrainingExample.objects.filter(status=TrainingExample.Status.PENDING)
        .exclude(id__in=list(skip))
        .select_related("correction", "correction__operator", "reviewed_by")
        .order_by("id")
        .first()
    )


def example_list(*, status: str = "") -> QuerySet[TrainingExample]:
    examples = TrainingExample.objects.select_related("correction", "reviewed_by", "export_batch")
    if status:
        examples = examples.filter(status=status)
    return examples.order_by("-id")


def example_counts() -> dict[str, int]:
    counts = dict.fromkeys(TrainingExample.Status.values, 0)
    for row in TrainingExample.objects.values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    counts["exportable"] = TrainingExample.objects.filter(
        status=TrainingExample.Status.APPROVED, export_batch__isnull=True
    ).count()
    return counts


def example_decisions(example: TrainingExample) -> QuerySet[ReviewDecision]:
    return example.decisions.select_related("actor")


def batch_list() -> QuerySet[ExportBatch]:
    return ExportBatch.objects.select_related("requested_by", "claimed_by").order_by("-id")


def batch_progress(batch: ExportBatch) -> dict:
    """What the batch page polls: status, stage, done/total, and the counts once ready."""
    return {
        "id": batch.id,
        "name": batch.name,
        "status": batch.status,
        "stage": batch.stage,
        "stage_label": LABELS["stage"].get(batch.stage, batch.stage),
        "done": batch.progress_done,
        "total": batch.progress_total,
        "error": batch.error,
        "counts": (batch.manifest or {}).get("counts"),
        "path": batch.path,
    }


def api_token_list() -> QuerySet[ApiToken]:
    return ApiToken.objects.select_related("created_by", "revoked_by").order_by("-created_at")

"""Export batches, on the Celery `export` queue (run eagerly in-process in the embedded default)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError

logger = logging.getLogger(__name__)

# Worth another try: a full disk being cleared, a database failover. Anything else is a bug or bad input.
_TRANSIENT = (OSError, DatabaseError)


@shared_task(name="apps.training.tasks.batch_export_task", bind=True, max_retries=3, acks_late=True)
def batch_export_task(self, batch_id: int) -> str | None:
    """Write export batch `batch_id`; safe to run again (a redelivered or retried task resumes cleanly)."""
    from apps.training.export import batch_build, batch_fail

    try:
        batch = batch_build(batch_id=batch_id)
    except _TRANSIENT as exc:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=10 * 2**self.request.retries) from exc
        batch_fail(batch_id=batch_id, error=f"{type(exc).__name__}: {exc}")
        raise
    except Exception as exc:
        logger.exception("export batch %s failed", batch_id)
        batch_fail(batch_id=batch_id, error=f"{type(exc).__name__}: {exc}")
        raise
    if batch is None:
        logger.warning("export batch %s does not exist", batch_id)
        return None
    return batch.status

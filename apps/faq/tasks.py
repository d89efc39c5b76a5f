"""Search-index upkeep, on the Celery `index` queue (run eagerly in-process in the embedded default)."""

from celery import shared_task


@shared_task(name="apps.faq.tasks.faq_index_update_task")
def faq_index_update_task(revision: int) -> None:
    """Bring the on-disk search index up to `revision`, re-embedding only the entries that changed."""
    from apps.faq.index import index_update

    index_update(target_revision=revision)

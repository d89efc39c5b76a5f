"""Celery tasks of the console: copilot drafts, on the `generation` queue like bot replies (routed in
settings), because they run the same model."""

from celery import shared_task


@shared_task(name="apps.console.tasks.copilot_draft_task")
def copilot_draft_task(customer_message_id: int) -> int | None:
    from apps.console.services import copilot_draft_generate

    draft = copilot_draft_generate(customer_message_id=customer_message_id)
    return draft.id if draft else None

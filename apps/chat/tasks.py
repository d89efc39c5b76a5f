"""Celery tasks of the chat: bot replies on the `generation` queue (routed in settings)."""

from celery import shared_task


@shared_task(name="apps.chat.tasks.reply_generate_task")
def reply_generate_task(customer_message_id: int) -> int | None:
    from apps.chat.pipeline import reply_generate

    reply = reply_generate(customer_message_id=customer_message_id)
    return reply.id if reply else None

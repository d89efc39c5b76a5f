"""Copilot drafts in the production shape: a real Celery worker (separate process) on the `generation` queue
writes the draft over real Redis and PostgreSQL, and it reaches the operator's socket through the Redis channel
layer."""

from __future__ import annotations

import re

import pytest
from channels.db import database_sync_to_async

from apps.console.models import CopilotDraft
from tests.console.test_consumer import asked_for_a_person_and_taken_over, of_type, signed_in
from tests.websocket import receive_until, send

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


async def test_a_celery_worker_writes_the_copilot_draft_and_the_operator_receives_it(
    small_faq, generation_worker, console_socket, communicator_factory, operator
):
    console = await signed_in(console_socket, operator)
    customer, conversation_id = await asked_for_a_person_and_taken_over(console, communicator_factory)

    await send(console, {"type": "draft.request", "conversation_id": conversation_id, "request_id": "d"})
    draft = (await receive_until(console, of_type("draft.ready", conversation_id=conversation_id)))[-1]["draft"]
    assert "再設定用のメール" in draft["text"] and draft["cited_faq_ids"] == ["ACC-001"]
    stored = await database_sync_to_async(lambda: list(CopilotDraft.objects.all()))()
    assert [d.id for d in stored] == [draft["id"]]
    await console.disconnect()
    await customer.disconnect()
    # The worker, not this process, wrote it.
    generation_worker.terminate()
    log = generation_worker.communicate(timeout=30)[0]
    assert re.search(rf"Task apps\.console\.tasks\.copilot_draft_task\[[^\]]+\] succeeded .*: {draft['id']}\b", log), (
        log[-3000:]
    )

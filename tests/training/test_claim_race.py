"""Claiming batches concurrently on PostgreSQL: row locks with SKIP LOCKED, so two trainers never get the same
batch and a claimer never waits behind another."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections, transaction

from apps.training import services
from apps.training.models import ExportBatch
from tests.training.factories import supervisor
from tests.training.test_queue_api import ready_batch

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def postgresql():
    if connection.vendor != "postgresql":
        pytest.fail("run with DATABASE_URL=postgres://... (bin/test does)")


def in_thread(fn):
    """Run `fn` on its own database connection, as a separate trainer process would."""

    def run(*args):
        try:
            return fn(*args)
        finally:
            connections.close_all()

    return run


def test_concurrent_claims_each_get_a_different_batch(postgresql, tmp_path):
    token, _ = services.api_token_create(name="trainer", created_by=supervisor())
    batches = {ready_batch(tmp_path, n).id for n in range(5)}
    start = threading.Barrier(8)

    @in_thread
    def claim(_):
        start.wait()
        batch = services.batch_claim(token=token)
        return batch.id if batch else None

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(claim, range(8)))
    claimed = [b for b in got if b is not None]
    assert sorted(claimed) == sorted(batches), "every batch claimed exactly once"
    assert got.count(None) == 3
    assert ExportBatch.objects.filter(status=ExportBatch.Status.CLAIMED).count() == 5


def test_a_claimer_skips_a_batch_another_holds_locked_instead_of_waiting(postgresql, tmp_path):
    token, _ = services.api_token_create(name="trainer", created_by=supervisor())
    first, second = ready_batch(tmp_path, 1), ready_batch(tmp_path, 2)
    locked, done = threading.Event(), threading.Event()

    @in_thread
    def slow_claimer():
        # Holds the first batch's row lock, as a claim in the middle of its transaction does.
        with transaction.atomic():
            ExportBatch.objects.select_for_update().get(id=first.id)
            locked.set()
            done.wait(timeout=30)

    holder = threading.Thread(target=slow_claimer)
    holder.start()
    try:
        assert locked.wait(timeout=10)
        batch = in_thread(lambda: services.batch_claim(token=token))()
        assert batch.id == second.id
    finally:
        done.set()
        holder.join(timeout=30)
    assert services.batch_claim(token=token).id == first.id

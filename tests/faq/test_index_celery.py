"""A stale index healed through a real Celery worker on the `index` queue (a separate process over real Redis and
PostgreSQL), as in production after a new version or new model weights."""

from __future__ import annotations

import logging
import time

import pytest

import apps.faq.services as services
from apps.faq.index import index_update, live_index
from apps.faq.search import faq_search
from apps.faq.services import faq_entries_upsert
from tests.celery_worker import celery_worker
from tests.faq.conftest import demo_rows

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

NEW_WEIGHTS = {"FAQ_PHRASE_MODEL_WEIGHTS": "0.5,0.5", "FAQ_DOC_MODEL_WEIGHTS": "0.5,0.5"}


def test_a_web_process_with_new_weights_asks_the_index_workers_for_a_rebuild_once(
    transactional_db, settings, index_dir, monkeypatch, caplog
):
    # The index as the previous version of the settings built it (no upsert task left queued behind it).
    monkeypatch.setattr(services, "_index_update_after_commit", lambda revision: None)
    faq_entries_upsert(rows=demo_rows(), actor="test")
    index_update()
    old_model_id = live_index.get().model_id
    monkeypatch.undo()

    # Index tasks that other tests queued with no worker to run them would rebuild the index before this test asks.
    from karakuri_cs.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("index")

    # The new version: this process and the index worker both run the new weights.
    settings.FAQ_PHRASE_MODEL_WEIGHTS = settings.FAQ_DOC_MODEL_WEIGHTS = (0.5, 0.5)
    env = {**NEW_WEIGHTS, "FAQ_INDEX_DIR": str(index_dir), "FAQ_CACHE_DIR": str(settings.FAQ_CACHE_DIR)}
    with celery_worker("index", redis_url=settings.REDIS_URL, env=env):
        with caplog.at_level(logging.ERROR, logger="apps.faq.search"):
            first, second = faq_search("パスワード忘れた"), faq_search("送料はいくら？")
        assert first.hits == [] and second.hits == [] and not first.confident
        assert first.kb_revision == second.kb_revision > 0
        stale_logs = [r for r in caplog.records if "rebuild_index" in r.getMessage()]
        assert len(stale_logs) == 1, "said once, not on every query"

        deadline = time.monotonic() + 180
        while not faq_search("パスワード忘れた").hits:
            assert time.monotonic() < deadline, "the index worker did not rebuild the index"
            time.sleep(0.5)
    assert live_index.get().model_id != old_model_id
    assert faq_search("パスワード忘れた").hits[0].external_id == "ACC-001"

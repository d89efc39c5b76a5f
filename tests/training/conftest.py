"""Fixtures for the training app: an operator who corrects, a supervisor who reviews, Celery run in-process."""

from __future__ import annotations

import pytest

from tests.training import factories


@pytest.fixture
def operator(db):
    return factories.user_in("operators", "operator1")


@pytest.fixture
def reviewer(db):
    return factories.supervisor("supervisor1")


@pytest.fixture
def eager_celery():
    """Run tasks in this process even when REDIS_URL is set (the real-worker test starts its own worker)."""
    from karakuri_cs.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def export_dir(tmp_path, settings):
    settings.TRAINING_EXPORT_DIR = tmp_path / "exports"
    return settings.TRAINING_EXPORT_DIR

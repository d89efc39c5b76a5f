"""A real Celery worker for the tests that need one: a separate process on one queue, over the same PostgreSQL
test database and Redis as the test, started by the same command an engineer runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def celery_worker(queue: str, *, redis_url: str, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Start a worker on `queue`, wait until it answers a ping, stop it afterwards."""
    if connection.vendor != "postgresql" or not redis_url:
        pytest.fail("run with DATABASE_URL=postgres://... and REDIS_URL=redis://... (bin/test does)")
    db = connection.settings_dict
    worker_env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis_url,
        **(env or {}),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "karakuri_cs", "worker", "-Q", queue, "-P", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info",
         "-n", f"test-{queue}-{os.getpid()}@%h"],
        cwd=ROOT, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    from karakuri_cs.celery import app

    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail("the Celery worker did not start:\n" + (worker.stdout.read() if worker.stdout else ""))
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)

"""The export task on a real Celery worker (a separate process on the `export` queue) over real Redis and
PostgreSQL, started by the same command an engineer runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.training.models import ExportBatch
from tests.celery_worker import celery_worker
from tests.training import factories

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def export_worker(transactional_db, settings, tmp_path):
    env = {"KARAKURI_DATA_DIR": str(tmp_path / "worker-data")}
    with celery_worker("export", redis_url=settings.REDIS_URL, env=env) as worker:
        yield worker


def test_the_command_runs_the_export_on_an_export_worker(export_worker, capsys, tmp_path):
    from karakuri_cs.celery import app

    assert not app.conf.task_always_eager, "a real broker, not in-process"
    operator, reviewer = factories.user_in("operators"), factories.supervisor()
    for n in range(30):
        factories.approved_example(
            operator=operator,
            reviewer=reviewer,
            chosen=f"{n}番の回答です。" + "と".join(f"語{n * 31 + i}" for i in range(8)),
        )
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"一般的な文章の{i}行目です。\n" for i in range(100)), encoding="utf-8")
    out = tmp_path / "exports"
    call_command(
        "export_training_data", "--format", "karakuri-sft", "--out", str(out), "--replay-corpus", str(corpus),
        "--replay-ratio", "0.2", "--validation-ratio", "0",
    )  # fmt: skip
    printed = capsys.readouterr()
    batch = ExportBatch.objects.get()
    assert batch.status == ExportBatch.Status.READY, batch.error
    assert printed.out.strip() == batch.path
    assert batch.attempts == 1 and batch.progress_done == 30
    lines = [json.loads(line) for line in (Path(batch.path) / "train.jsonl").read_text("utf-8").splitlines()]
    assert len(lines) == 38 and sum("[INST]" in line["text"] for line in lines) == 30
    assert batch.manifest["replay"]["seed"] == batch.seed

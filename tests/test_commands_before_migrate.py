"""The commands a person runs by hand, on a database that was never migrated (a fresh clone before `bin/run`):
one clear line naming the fix, not a "no such table" traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = [
    ["ask", "送料はいくらですか"],
    ["chat"],
    ["import_faq", "apps/faq/demo/faq.jsonl"],
    ["export_faq", "-"],
    ["eval_retrieval", "apps/faq/demo/devset.jsonl"],
    ["rebuild_index"],
    ["export_training_data", "--format", "karakuri-sft"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_command_on_a_database_never_migrated_says_to_migrate(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["KARAKURI_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT, env=env, input="", capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "run `python manage.py migrate` first" in done.stderr
    assert "Traceback" not in done.stderr

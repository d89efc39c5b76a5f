"""Settings come from the environment; a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def start_django(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "REPLY_EXECUTION")}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "karakuri_cs.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_starts_on_the_embedded_defaults(tmp_path):
    result = start_django(KARAKURI_DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("DATABASE_URL", "postgres://localhost:5432/"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://127.0.0.1:port/0"),
        ("DJANGO_DEBUG", "maybe"),
        ("REPLY_BACKEND", "gpt"),
        ("CHAT_MAX_MESSAGE_CHARS", "lots"),
        ("CHAT_MAX_MESSAGE_CHARS", "0"),
        ("CHAT_RATE_LIMIT", "often"),
        ("REPLY_EXECUTION", "celery"),
        ("FAQ_PHRASE_MODEL_WEIGHTS", "1"),  # one weight for the default's two models
        ("FAQ_PHRASE_MODEL_WEIGHTS", "0.8;0.2"),
        ("FAQ_DOC_MODEL_WEIGHTS", "-1,2"),
        ("FAQ_DOC_MODEL_WEIGHTS", "0,0"),
        ("FAQ_DOC_MODEL_WEIGHTS", "nan,1"),
        ("FAQ_DOC_MODEL_WEIGHTS", "inf,1"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(tmp_path, name, value):
    result = start_django(KARAKURI_DATA_DIR=str(tmp_path), **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert name in result.stderr.strip().splitlines()[-1]


def test_the_readme_documents_every_variable():
    from karakuri_cs.env import READ

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert READ, "settings were loaded"
    missing = [name for name in READ if name not in documented]
    assert not missing, f"add these to the README's table of variables: {missing}"

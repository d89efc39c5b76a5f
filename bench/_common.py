"""Pieces the benchmark scripts share: percentiles, a real daphne server on a free port, and Django on a throwaway
SQLite database."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


@contextmanager
def daphne_server(*, start_timeout: float = 120) -> Iterator[int]:
    """Serve karakuri_cs.asgi with this process's environment on a free port; yields the port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "karakuri_cs.asgi:application"],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start: " + server.stderr.read().decode()[-2000:]) from None
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def django_setup() -> Path:
    """Configure Django on a fresh SQLite database in a temporary directory and migrate it. Returns the dir."""
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="karakuri-bench-"))
    os.environ["KARAKURI_DATA_DIR"] = str(work)
    os.environ["FAQ_INDEX_DIR"] = str(work / "index")
    os.environ.setdefault("FAQ_CACHE_DIR", str(ROOT / "var" / "cache"))
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)  # index updates run in-process, right after each commit
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "karakuri_cs.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return work

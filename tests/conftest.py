"""Shared test set-up.

Each test session gets its own data directory (SQLite file, search index) so runs never see each other's
state. The search index's embedding cache is kept across sessions in var/test-embedding-cache, which only
makes re-embedding the same demo text free; it never changes a result.
"""

import os
import tempfile
from pathlib import Path

_session_dir = Path(tempfile.mkdtemp(prefix="karakuri-test-"))
os.environ.setdefault("KARAKURI_DATA_DIR", str(_session_dir))
os.environ.setdefault("FAQ_INDEX_DIR", str(_session_dir / "index"))

"""Loaded as a pytest plugin (`-p tests.session_env` in pyproject.toml) so that it runs before Django's
settings are read: each test session gets its own data directory (search index, caches), so concurrent or
earlier runs never see each other's state. The embedding cache alone is shared across sessions
(var/test-cache): it only makes re-embedding the same text free and never changes a result."""

import os
import tempfile
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent
_session_dir = Path(tempfile.mkdtemp(prefix="karakuri-test-"))
os.environ["KARAKURI_DATA_DIR"] = str(_session_dir)
os.environ["FAQ_INDEX_DIR"] = str(_session_dir / "index")
os.environ.setdefault("FAQ_CACHE_DIR", str(_ROOT / "var" / "test-cache"))
# Every test client comes from 127.0.0.1; tests of the limits set their own.
os.environ.setdefault("CHAT_NEW_CONVERSATION_RATE_LIMIT", "10000/minute")

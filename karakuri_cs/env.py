"""Environment helpers that fail loudly.

Parsing is django-environ's; what this module adds is that every bad value stops start-up with
ImproperlyConfigured naming the variable and what it expected, and that every variable read is recorded in
READ so a test can check that the README documents each one.
"""

from __future__ import annotations

import math
from pathlib import Path
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

_env = environ.Env()

# Every variable the settings read, in order; the README's table must list each.
READ: list[str] = []


def _raw(name: str) -> str | None:
    if name not in READ:
        READ.append(name)
    return _env.str(name, default=None)


def _bad(name: str, value: str, expected: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"{name}={value!r} is not valid: expected {expected}.")


def env_str(name: str, *, default: str) -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, *, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in environ.Env.BOOLEAN_TRUE_STRINGS:
        return True
    if lowered in ("false", "off", "no", "0", "n", "f", ""):
        return False
    raise _bad(name, value, "true or false")


def env_int(name: str, *, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "an integer") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _bad(name, value, f"an integer between {minimum} and {maximum}")
    return number


def env_float(name: str, *, default: float, minimum: float | None = None, maximum: float | None = None) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, "a number") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _bad(name, value, f"a number between {minimum} and {maximum}")
    return number


def env_weights(name: str, *, count: int, default: tuple[float, ...]) -> tuple[float, ...]:
    """`count` comma-separated non-negative numbers, not all zero (e.g. "0.8,0.2")."""
    value = _raw(name)
    if value is None:
        return default
    expected = f"{count} comma-separated non-negative numbers, not all zero"
    try:
        numbers = tuple(float(part) for part in value.split(","))
    except ValueError:
        raise _bad(name, value, expected) from None
    if len(numbers) != count or any(not (math.isfinite(n) and n >= 0) for n in numbers) or not any(numbers):
        raise _bad(name, value, expected)
    return numbers


def env_choice(name: str, *, choices: tuple[str, ...], default: str) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value not in choices:
        raise _bad(name, value, "one of " + ", ".join(choices))
    return value


def env_path(name: str, *, default: Path) -> Path:
    value = _raw(name)
    return default if value is None else Path(value).expanduser()


def env_database(name: str, *, default_sqlite: Path) -> dict:
    value = _raw(name)
    if value is None:
        default_sqlite.parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite),
            # WAL lets the web process read while a writer commits; the timeout rides out short locks.
            "OPTIONS": {"timeout": 20, "init_command": "PRAGMA journal_mode=WAL;"},
            "TEST": _sqlite_test_database(default_sqlite),
        }
    scheme = urlparse(value).scheme
    if scheme not in ("postgres", "postgresql", "sqlite"):
        raise _bad(name, value, "a postgres://user@host:port/name or sqlite:////absolute/path URL")
    try:
        config = environ.Env.db_url_config(value)
    except Exception as exc:  # django-environ raises several types for malformed URLs
        raise _bad(name, value, f"a database URL ({exc})") from None
    if not config.get("NAME"):
        raise _bad(name, value, "a database URL that names the database")
    if config.get("ENGINE") == "django.db.backends.sqlite3" and config["NAME"] != ":memory:":
        config["TEST"] = _sqlite_test_database(Path(config["NAME"]))
    # Persistent connections save a connect per request; 0 closes them after each request (tests use it).
    config["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", default=60, minimum=0)
    config["CONN_HEALTH_CHECKS"] = True
    return config


def _sqlite_test_database(path: Path) -> dict:
    """Tests on SQLite use a file beside the database, not Django's default in-memory one.

    The in-memory database shares a cache between connections, with table-level locks that the timeout does not
    retry: a reply generated in one thread while the socket's thread stored the next message failed with
    "table is locked", which a file (what runs in production) never does. A file is also what the browser
    tests' server subprocess can open.
    """
    return {"NAME": str(path.with_name(f"test_{path.name}"))}


def env_redis_url(name: str, *, default: str) -> str:
    value = _raw(name)
    if value is None or value == "":
        return default
    parsed = urlparse(value)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise _bad(name, value, "a redis://host:port/db URL")
    try:
        parsed.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        raise _bad(name, value, "a redis://host:port/db URL with a numeric port") from None
    return value


def env_rate_limit(name: str, *, default: str) -> str:
    """A rate such as "10/minute" or "100 per hour", in the `limits` library's notation."""
    import limits

    value = env_str(name, default=default)
    try:
        limits.parse(value)
    except ValueError:
        raise _bad(name, value, 'a rate such as "10/minute"') from None
    return value

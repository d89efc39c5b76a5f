"""Shared test set-up. The per-session data directory is set by tests/session_env.py (a plugin that runs
before Django reads its settings)."""

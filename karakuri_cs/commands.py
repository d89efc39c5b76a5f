"""What the project's management commands share."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor


def database_ready_or_fail(database: str = "default") -> None:
    """Stop with a message naming the fix when the database lacks tables this version needs (a fresh clone
    before `migrate`, or an upgrade), rather than with a "no such table" traceback at the first query."""
    try:
        executor = MigrationExecutor(connections[database])
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        raise CommandError(f"The database cannot be read ({exc}); check DATABASE_URL.") from None
    if unapplied:
        raise CommandError(
            f"The database is not up to date ({len(unapplied)} migrations not applied): run "
            "`python manage.py migrate` first (bin/run does it)."
        )

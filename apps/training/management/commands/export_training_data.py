"""python manage.py export_training_data --format F [--replay-corpus PATH --replay-ratio 0.2] [--since ...] --out DIR"""

from __future__ import annotations

import time
from datetime import datetime
from datetime import time as dtime

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from apps.training import services
from apps.training.formats import FORMATS
from apps.training.models import ExportBatch
from karakuri_cs.commands import database_ready_or_fail

_WORKING = {ExportBatch.Status.QUEUED, ExportBatch.Status.RUNNING}


def _when(value: str) -> datetime:
    """An ISO date (midnight, local time) or date-time."""
    parsed = parse_datetime(value)
    if parsed is None:
        day = parse_date(value)
        if day is None:
            raise ValueError(value)
        parsed = datetime.combine(day, dtime.min)
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


class Command(BaseCommand):
    help = (
        "Export approved training examples as a batch (on the Celery `export` queue, or in this process without "
        "Redis), showing progress until the batch is ready. Prints the batch folder."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument(
            "--out", help="folder the batch folder is written into (on the export worker); default TRAINING_EXPORT_DIR"
        )
        parser.add_argument("--replay-corpus", help='a .jsonl ({"text": ...}) or .txt file, or a folder of them')
        parser.add_argument("--replay-ratio", type=float, help="replay lines' share of train.jsonl (default 0.2)")
        parser.add_argument("--seed", type=int, help="fixes the replay sample and the split (default: random)")
        parser.add_argument("--since", help="only examples created at or after this date (YYYY-MM-DD[THH:MM])")
        parser.add_argument("--until", help="only examples created before this date")
        parser.add_argument(
            "--validation-ratio", type=float, help="share of conversations held out (default TRAINING_VALIDATION_RATIO)"
        )
        parser.add_argument(
            "--reexport", action="store_true", help="include examples already exported in an earlier batch"
        )
        parser.add_argument("--user", help="username recorded as the requester")
        parser.add_argument("--no-wait", action="store_true", help="queue the batch and return")

    def handle(self, *args, **options) -> None:
        database_ready_or_fail()
        try:
            since = _when(options["since"]) if options["since"] else None
            until = _when(options["until"]) if options["until"] else None
        except ValueError as exc:
            raise CommandError(f"not a date: {exc}") from None
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        try:
            batch = services.batch_export(
                format=options["format"],
                requested_by=user,
                since=since,
                until=until,
                reexport=options["reexport"],
                replay_corpus=options["replay_corpus"],
                replay_ratio=options["replay_ratio"],
                seed=options["seed"],
                validation_ratio=options["validation_ratio"],
                out_dir=options["out"],
            )
        except services.NothingToExport:
            self.stdout.write("Nothing to export: no approved example that is not in a batch already.")
            return
        except services.ExportInvalid as exc:
            raise CommandError("; ".join(f"--{k.replace('_', '-')}: {v}" for k, v in exc.errors.items())) from None
        self.stderr.write(f"{batch.name} queued (seed {batch.seed})")
        if options["no_wait"]:
            self.stdout.write(str(batch.id))
            return
        batch = self._wait(batch)
        if batch.status == ExportBatch.Status.FAILED:
            raise CommandError(f"{batch.name} failed: {batch.error}")
        if batch.status == ExportBatch.Status.EMPTY:
            self.stdout.write("Nothing to export: another batch took the examples first.")
            return
        counts = batch.manifest["counts"]
        self.stderr.write(
            f"{counts['examples']} examples ({counts['train_examples']} train, {counts['validation_examples']} "
            f"validation), {counts['replay_lines']} replay lines, {counts['dropped_duplicates']['total']} "
            f"duplicates dropped, {counts['masked_spans']['total']} spans masked"
        )
        self.stdout.write(batch.path)

    def _wait(self, batch: ExportBatch) -> ExportBatch:
        """Poll the batch row (written by the worker) and draw its progress until it is done."""
        bar = None
        while True:
            batch.refresh_from_db()
            if batch.progress_total and bar is None:
                bar = tqdm(total=batch.progress_total, unit="ex", desc=batch.name, file=self.stderr._out)
            if bar is not None:
                bar.update(batch.progress_done - bar.n)
                bar.set_postfix_str(batch.stage)
            if batch.status not in _WORKING:
                if bar is not None:
                    bar.close()
                return batch
            time.sleep(0.5)

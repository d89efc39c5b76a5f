"""`python manage.py import_faq FILE`: load FAQ entries from CSV or JSONL into the knowledge base."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.faq.importers import FORMATS, FaqImportError, ImportReport, faq_import_file
from karakuri_cs.commands import database_ready_or_fail


class Command(BaseCommand):
    help = (
        "Import FAQ entries from a CSV or JSONL file, upserting by id in one KB revision. CSV may be UTF-8 "
        "(with or without BOM) or CP932/Shift_JIS as Japanese Excel saves it. A file with bad rows imports "
        "nothing unless --skip-invalid."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV or JSONL file; the format comes from the extension.")
        parser.add_argument("--skip-invalid", action="store_true", help="Import the valid rows, report the bad ones.")
        parser.add_argument("--format", choices=FORMATS, dest="fmt", help="Override the format from the extension.")
        parser.add_argument("--encoding", help="Override encoding detection (e.g. utf-8, cp932, shift_jis).")
        parser.add_argument("--dry-run", action="store_true", help="Report what would change; write nothing.")

    def handle(
        self, *args, file: str, skip_invalid: bool, fmt: str | None, encoding: str | None, dry_run: bool, **options
    ) -> None:
        database_ready_or_fail()
        try:
            report = faq_import_file(
                file, skip_invalid=skip_invalid, fmt=fmt, encoding=encoding, actor="import_faq", dry_run=dry_run
            )
        except FaqImportError as exc:
            self._print_errors(exc.report)
            hint = " Fix them or pass --skip-invalid." if exc.report.rows_valid else ""
            raise CommandError(f"{exc}{hint}") from exc
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror or exc}") from exc

        self._print_errors(report)
        self.stdout.write(
            f"Read {report.rows_read} rows from {file} ({report.fmt}, {report.encoding}): "
            f"{report.rows_valid} valid, {len(report.errors)} skipped."
        )
        counts = f"{len(report.created)} created, {len(report.updated)} updated, {len(report.unchanged)} unchanged"
        if report.dry_run:
            self.stdout.write(f"Dry run, nothing written: would be {counts}.")
        elif report.revision is None:
            self.stdout.write(self.style.SUCCESS(f"Nothing changed ({counts}); the KB revision stays the same."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported as KB revision {report.revision}: {counts}."))

    def _print_errors(self, report: ImportReport) -> None:
        for error in report.errors:
            self.stderr.write(str(error))

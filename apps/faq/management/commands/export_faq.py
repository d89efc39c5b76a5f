"""`python manage.py export_faq FILE|-`: write the knowledge base as CSV or JSONL that import_faq reads back."""

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.faq.importers import FORMATS, FaqExportError, faq_export_file
from karakuri_cs.commands import database_ready_or_fail


class Command(BaseCommand):
    help = (
        "Export FAQ entries to CSV (UTF-8 with BOM for Excel, or --encoding cp932) or JSONL. Importing the file "
        "again changes nothing. Use - for standard output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="Output file, or - for standard output.")
        parser.add_argument("--format", choices=FORMATS, dest="fmt", help="Default: from the extension; csv for -.")
        parser.add_argument(
            "--encoding", help="Default utf-8-sig (UTF-8 with BOM) for CSV, utf-8 for JSONL; cp932 for older Excel."
        )
        parser.add_argument("--include-inactive", action="store_true", help="Also export deactivated entries.")

    def handle(
        self, *args, file: str, fmt: str | None, encoding: str | None, include_inactive: bool, **options
    ) -> None:
        database_ready_or_fail()
        to_stdout = file == "-"
        if to_stdout:
            sys.stdout.flush()  # bytes go straight to the buffer underneath; keep them in order
        try:
            report = faq_export_file(
                sys.stdout.buffer if to_stdout else file,
                fmt=fmt or ("csv" if to_stdout else None),
                encoding=encoding,
                include_inactive=include_inactive,
            )
        except FaqExportError as exc:
            raise CommandError(f"{exc}. Nothing was written.") from exc
        except (ValueError, LookupError) as exc:
            raise CommandError(f"{exc} (--format, --encoding)") from exc
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror or exc}") from exc
        if to_stdout:
            sys.stdout.buffer.flush()
        # With "-" the file is standard output, so the summary goes to standard error.
        out = self.stderr if to_stdout else self.stdout
        out.write(
            f"Wrote {report.entries} {'entry' if report.entries == 1 else 'entries'} (KB revision {report.revision}) to {file} as {report.fmt}, {report.encoding}."
        )

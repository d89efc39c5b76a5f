"""`python manage.py run`: the embedded default in one command.

Migrates the database, loads the demo FAQ into an empty knowledge base, builds the search index, and serves
the ASGI application (HTTP + WebSocket, static files included) with daphne.
"""

from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand

from apps.faq.models import FaqEntry

DEMO_FAQ = Path(__file__).resolve().parents[3] / "faq" / "demo" / "faq.jsonl"


class Command(BaseCommand):
    help = "Migrate, load the demo FAQ into an empty database, build the index and serve on 127.0.0.1:8000."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-demo", action="store_true", help="Do not load the demo FAQ.")

    def handle(self, *args, host: str, port: int, no_demo: bool, **options):
        call_command("migrate", interactive=False, verbosity=0)
        if not no_demo and not FaqEntry.objects.exists():
            self.stdout.write(f"Loading the demo FAQ from {DEMO_FAQ} ...")
            call_command("import_faq", str(DEMO_FAQ))
        call_command("rebuild_index")  # a no-op when the saved index is current
        self.stdout.write(self.style.SUCCESS(f"Serving on http://{host}:{port}/chat/  (Ctrl+C to stop)"))
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(["--bind", host, "--port", str(port), "karakuri_cs.asgi:application"])

"""`python manage.py rebuild_index [--from-scratch]`: bring the FAQ search index up to the database now.

Shows a progress bar over the texts to embed and reports entries per second. Unchanged text is served from
the embedding cache; `--from-scratch` bypasses the cache to measure (or recover from) a full re-embedding.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from tqdm import tqdm

from karakuri_cs.commands import database_ready_or_fail


class Command(BaseCommand):
    help = "Rebuild the FAQ search index from the database (progress bar, entries per second)."

    def add_arguments(self, parser):
        parser.add_argument("--from-scratch", action="store_true", help="ignore the embedding cache and the live index")

    def handle(self, *args, **options):
        database_ready_or_fail()
        from apps.faq import index as faq_index
        from apps.faq.embedders import embedder_get

        embedder = embedder_get()
        saved_cache = embedder.cache
        if options["from_scratch"]:
            embedder.cache = None
        bar = tqdm(total=0, unit="text", desc="embedding", disable=options["verbosity"] == 0)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            report = faq_index.index_update(progress=progress, from_scratch=options["from_scratch"])
        finally:
            bar.close()
            embedder.cache = saved_cache
        if report.skipped:
            self.stdout.write(f"Index already at KB r{report.revision} ({report.entries} entries); nothing to do.")
            return
        rate = report.entries / report.seconds if report.seconds > 0 else float("inf")
        self.stdout.write(
            f"Indexed KB r{report.revision}: {report.entries} entries ({report.changed} changed, {report.removed} "
            f"removed, {report.embedded} texts embedded) in {report.seconds:.1f} s = {rate:.0f} entries/s"
        )

"""The Celery app. Queues: `default`, `generation` (bot replies, on the host that holds the model), `index`
(search index updates) and `export` (training batches). Without REDIS_URL tasks run eagerly in-process."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "karakuri_cs.settings")

app = Celery("karakuri_cs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def search_warm_up_for_generation(**_kwargs) -> None:
    """A process that will run `generation` tasks searches the FAQ in every reply: it loads the search models now,
    not in the first customer's turn after a start. Sent in the process that runs the tasks (the worker itself with
    `-P solo`, each child with prefork)."""
    if "generation" in (app.amqp.queues.consume_from or {}):
        from apps.faq.search import search_warm_up

        search_warm_up()

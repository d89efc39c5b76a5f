"""The Celery app. Queues: `default`, `generation` (bot replies, on the host that holds the model), `index`
(search index updates) and `export` (training batches). Without REDIS_URL tasks run eagerly in-process."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "karakuri_cs.settings")

app = Celery("karakuri_cs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

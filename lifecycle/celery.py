"""The Celery app: configured from Django settings (``CELERY_*``), tasks discovered per app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifecycle.settings")

app = Celery("lifecycle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="lifecycle.ping")
def ping(payload: str = "pong") -> str:
    """Round-trip check used by health checks and the worker smoke test."""
    return payload

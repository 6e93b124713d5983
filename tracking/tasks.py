"""Celery tasks of the tracking API: thin callers of tracking.services."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction


@shared_task(
    name="tracking.backfill",
    acks_late=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=5,
    ignore_result=True,
)
def backfill_task(event_name: str | None = None) -> int:
    """Convert stored events of a newly mapped name into touchpoints (idempotent)."""
    from tracking.services import unmapped_backfill

    return unmapped_backfill(event_name=event_name)


def backfill_enqueue(event_name: str | None) -> None:
    """Start the backfill once the mapping's transaction has committed."""
    transaction.on_commit(lambda: backfill_task.delay(event_name))

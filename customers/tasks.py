"""Celery tasks: thin callers of customers.jobs; ids in, no business logic here."""

from __future__ import annotations

from celery import shared_task
from django.db import transaction

from customers import jobs
from customers.models import JobRun

# Periodic tasks expire: a refresh that waited longer than its interval is obsolete.
REFRESH_EXPIRES = 110


@shared_task(name="customers.refresh", expires=REFRESH_EXPIRES, ignore_result=True)
def refresh_task() -> int:
    """Incremental refresh (beat, every 2 minutes); also re-enqueues stalled chunks."""
    run = jobs.refresh_run()
    for chunk_id in jobs.stalled_chunk_ids():
        chunk_task.delay(chunk_id)
    return run.pk


@shared_task(name="customers.nightly", ignore_result=True)
def nightly_task() -> int:
    run = jobs.nightly_start()
    enqueue_chunks(run)
    return run.pk


@shared_task(name="customers.rescore", ignore_result=True)
def rescore_task(full: bool = False, reason: str = "", triggered_by: str = "") -> int:
    run = jobs.rescore_start(full=full, reason=reason, triggered_by=triggered_by)
    enqueue_chunks(run)
    return run.pk


@shared_task(
    name="customers.chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ConnectionError,),
    retry_backoff=True,
    max_retries=5,
    ignore_result=True,
)
def chunk_task(chunk_id: int) -> bool:
    return jobs.chunk_run(chunk_id)


def enqueue_chunks(run: JobRun) -> None:
    if run.status != JobRun.Status.RUNNING:
        return
    for chunk_id in jobs.pending_chunk_ids(run):
        chunk_task.delay(chunk_id)


def rescore_enqueue(*, full: bool, reason: str, triggered_by: str = "") -> None:
    """Start a full rescore once the current transaction commits (e.g. a weight change)."""
    transaction.on_commit(
        lambda: rescore_task.delay(full=full, reason=reason, triggered_by=triggered_by)
    )

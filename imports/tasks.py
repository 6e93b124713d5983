"""Celery tasks: thin callers of imports.services; ids in, no business logic here."""

from __future__ import annotations

from celery import shared_task

from imports import services


@shared_task(
    name="imports.run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def import_task(run_id: int) -> None:
    """Run one queued import. A redelivery finds it claimed and does nothing, unless the
    worker that claimed it died (no heartbeat for a while): nothing it did was committed,
    so running it again is safe."""
    services.import_run_execute(run_id=run_id)

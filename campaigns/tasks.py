"""Celery tasks for plans: thin callers of campaigns.tick and campaigns.dispatch."""

from __future__ import annotations

import math

from celery import shared_task
from django.db import transaction

from campaigns.dispatch import dispatch_due
from campaigns.models import StepExecution
from campaigns.tick import plans_tick

TICK_EXPIRES = 55
# One dispatch task works at most this long, then leaves the rest to the next tick's tasks.
DISPATCH_BUDGET_SECONDS = 50
ROWS_PER_DISPATCH_TASK = 2_000
MAX_DISPATCH_TASKS = 8


@shared_task(name="campaigns.tick", expires=TICK_EXPIRES, ignore_result=True)
def tick_task() -> dict:
    """Beat, every minute: one plan tick, then enough dispatch tasks for what is due."""
    result = plans_tick()
    due = StepExecution.objects.filter(
        status__in=[StepExecution.Status.PENDING, StepExecution.Status.SENDING]
    ).count()
    tasks = min(MAX_DISPATCH_TASKS, math.ceil(due / ROWS_PER_DISPATCH_TASK))
    for _ in range(tasks):
        transaction.on_commit(lambda: dispatch_task.delay())
    return {"enrolled": result.enrolled, "executions": result.executions, "dispatch": tasks}


@shared_task(
    name="campaigns.dispatch",
    acks_late=True,
    reject_on_worker_lost=True,
    expires=TICK_EXPIRES * 2,
)
def dispatch_task(max_rows: int | None = None, lease_seconds: int | None = None) -> dict:
    """Perform due actions (claims with SKIP LOCKED: any number may run at once; a task
    delivered twice claims nothing the second time)."""
    result = dispatch_due(
        max_rows=max_rows, lease_seconds=lease_seconds, time_budget=DISPATCH_BUDGET_SECONDS
    )
    return {"claimed": result.claimed, "sent": result.sent, "failed": result.failed}

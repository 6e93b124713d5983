"""A real worker killed in the middle of a rescore leaves consistent data; the next run
finishes the job (PostgreSQL + the configured broker)."""

import signal
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from customers import jobs
from customers.engagement import engine_config
from customers.engine import decay
from customers.models import Engagement, JobChunk, JobRun, ScoreState, Touchpoint, TouchpointType
from customers.tasks import chunk_task
from tests.factories import CustomerFactory
from tests.workers import shared_database_url, worker_start

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def start_worker(queue: str) -> subprocess.Popen:
    return worker_start(queue, env={"DATABASE_URL": shared_database_url()})


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def expected_sum(customer_id: int) -> float:
    config = engine_config()
    return sum(
        float(
            decay.decay_terms(
                float(w), t.timestamp(), epoch=config.epoch, half_life_days=config.half_life_days
            )
        )
        for w, t in Touchpoint.objects.filter(customer_id=customer_id).values_list(
            "type__weight", "occurred_at"
        )
    )


def test_worker_killed_mid_rescore_leaves_consistent_data_and_next_run_finishes():
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL:
        pytest.skip("needs PostgreSQL (row locks to pause a chunk) and a broker")
    login = TouchpointType.objects.get(key="login")
    ids = [1, jobs.RESCORE_CHUNK_IDS + 1, 2 * jobs.RESCORE_CHUNK_IDS + 1]  # three chunks
    for cid in ids:
        customer = CustomerFactory(id=cid)
        for day in range(5):  # history written straight in: only a rescore counts it
            Touchpoint.objects.create(
                customer=customer, type=login, occurred_at=T0 - timedelta(days=day), source="test"
            )
    # Hold a row lock on the middle customer so its chunk blocks mid-transaction.
    locked, release = threading.Event(), threading.Event()

    def hold_row():
        try:
            with transaction.atomic():
                Engagement.objects.select_for_update().get(customer_id=ids[1])
                locked.set()
                assert release.wait(120)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_row)
    holder.start()
    assert locked.wait(30)

    queue = f"test-kill-{uuid.uuid4().hex[:6]}"
    worker = start_worker(queue)
    try:
        run = jobs.rescore_start(full=True)
        for chunk_id in jobs.pending_chunk_ids(run):
            chunk_task.apply_async(args=[chunk_id], queue=queue)
        wait_for(lambda: JobChunk.objects.filter(run=run, status="done").count() == 1)
        time.sleep(1.0)  # the worker is now blocked inside the second chunk's transaction
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        release.set()
        holder.join(30)
        if worker.poll() is None:
            worker.kill()

    # Consistent: the finished chunk is fully applied, the killed one not at all.
    time.sleep(1.0)  # let PostgreSQL notice the dead client and roll its transaction back
    run.refresh_from_db()
    assert run.status == JobRun.Status.RUNNING and run.chunks_done == 1
    assert ScoreState.objects.get(customer_id=ids[0]).decay_sum == pytest.approx(
        expected_sum(ids[0]), rel=1e-12
    )
    assert ScoreState.objects.get(customer_id=ids[1]).decay_sum == 0.0
    assert JobChunk.objects.get(run=run, first_id__lte=ids[1], last_id__gte=ids[1]).status == (
        "pending"
    )

    # The next scheduled refresh re-enqueues stalled chunks; a new worker finishes the run.
    worker = start_worker(queue)
    try:
        for chunk_id in jobs.stalled_chunk_ids(older_than_seconds=0):
            chunk_task.apply_async(args=[chunk_id], queue=queue)
        wait_for(lambda: JobRun.objects.get(pk=run.pk).status == JobRun.Status.SUCCEEDED, 90)
    finally:
        worker.terminate()
        worker.wait(30)
    run.refresh_from_db()
    assert run.chunks_done == run.chunks_total == 3
    for cid in ids:
        assert ScoreState.objects.get(customer_id=cid).decay_sum == pytest.approx(
            expected_sum(cid), rel=1e-12
        )
        assert ScoreState.objects.get(customer_id=cid).frequency == 5

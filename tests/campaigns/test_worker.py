"""With a real Celery worker on the configured broker and PostgreSQL: the whole journey,
and a worker killed after sending but before recording never causes a second effect."""

import email
import os
import signal
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from campaigns import services
from campaigns.models import Coupon, Enrollment, StepExecution
from campaigns.tasks import dispatch_task
from campaigns.tick import plans_tick
from tests.campaigns.conftest import T0, comes_back, quiet_customers, three_step_plan
from tests.campaigns.test_exactly_once import webhook_plan
from tests.workers import shared_database_url, worker_start

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def real_worker(tmp_path):
    """Start workers on a private queue against the test database; stop them afterwards."""
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("needs PostgreSQL and a Redis broker")
    url = shared_database_url()
    queue = f"test-plans-{uuid.uuid4().hex[:8]}"
    mail_dir = tmp_path / "mail"
    env = {
        "DATABASE_URL": url,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        process = worker_start(queue, env=env)
        started.append(process)
        return process

    start.queue = queue
    start.mail_dir = mail_dir
    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_for(condition, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def mails(directory: Path) -> list[email.message.Message]:
    if not directory.exists():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        # The file backend appends messages separated by a line of 79 dashes.
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip():
                found.append(email.message_from_string(chunk.strip()))
    return found


def dispatch_on_worker(queue: str, **kwargs) -> dict:
    return dispatch_task.apply_async(kwargs=kwargs, queue=queue).get(timeout=90)


def test_whole_journey_with_a_real_worker(marketer, real_worker):
    """Quiet → cooling → enrolled → day-7 email → day-14 coupon (and its email) → logs in →
    re-engaged; control customers get nothing. Ticks run with an injected clock, dispatch
    runs on the worker (everything due is in its past)."""
    real_worker()
    plan = three_step_plan(marketer, holdout=30)
    services.plan_launch(plan, marketer, now=T0 - timedelta(days=1))
    customers = quiet_customers(12, at=T0)

    plans_tick(now=T0 + timedelta(minutes=1))
    arms = dict(Enrollment.objects.filter(plan=plan).values_list("customer_id", "arm"))
    treated = [c for c in customers if arms[c.pk] == "treatment"]
    control = [c for c in customers if arms[c.pk] == "control"]
    assert len(arms) == 12 and treated and control

    plans_tick(now=T0 + timedelta(days=7, minutes=1))
    assert dispatch_on_worker(real_worker.queue)["sent"] == len(treated)
    sent = mails(real_worker.mail_dir)
    assert sorted(m["To"] for m in sent) == sorted(c.email for c in treated)
    assert all(m["Message-ID"].startswith("<lc") for m in sent)

    plans_tick(now=T0 + timedelta(days=14, minutes=1))
    dispatch_on_worker(real_worker.queue)
    plans_tick(now=T0 + timedelta(days=14, minutes=2))
    dispatch_on_worker(real_worker.queue)
    sent = mails(real_worker.mail_dir)
    assert len(sent) == 2 * len(treated)
    codes = set(Coupon.objects.values_list("code", flat=True))
    assert len(codes) == len(treated)
    gift = [m for m in sent if m["Subject"] == "A gift for you"]
    assert all(
        any(code in part.get_payload(decode=True).decode() for code in codes)
        for m in gift
        for part in m.walk()
        if part.get_content_type() == "text/plain"
    )

    # The worker sent on the real clock, so the customer comes back after that.
    back_at = timezone.now()
    comes_back(treated[0], back_at)
    comes_back(control[0], back_at)
    plans_tick(now=back_at + timedelta(minutes=1))
    back = Enrollment.objects.get(plan=plan, customer=treated[0])
    assert back.status == "reengaged" and back.reengaged_after_step.position == 3
    assert Enrollment.objects.get(plan=plan, customer=control[0]).status == "reengaged"
    control_rows = StepExecution.objects.filter(enrollment__arm="control")
    assert set(control_rows.values_list("status", flat=True)) == {"held_out"}
    assert not any(m["To"] in {c.email for c in control} for m in sent)


def test_worker_killed_after_sending_before_recording_causes_one_effect(
    marketer, real_worker, receiver
):
    """The receiver holds the first request open; the worker is SIGKILLed while it waits,
    so the webhook was delivered but never recorded. After the lease expires a second
    worker resends with the same Idempotency-Key and records it; the receiver's effect
    (deduplicated by key) happens once."""
    quiet_customers(1)
    webhook_plan(marketer, receiver.url)
    plans_tick(now=T0 + timedelta(minutes=1))
    execution = StepExecution.objects.get()

    receiver.hold.clear()
    first = real_worker()
    dispatch_task.apply_async(kwargs={"lease_seconds": 3}, queue=real_worker.queue)
    assert receiver.arrived.wait(90), "the worker never delivered"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(30)
    receiver.hold.set()
    execution.refresh_from_db()
    assert execution.status == "sending" and execution.attempts == 1

    real_worker()
    time.sleep(3.5)  # the lease runs out
    wait_for(
        lambda: (
            dispatch_on_worker(real_worker.queue, lease_seconds=3)["sent"] == 1
            or StepExecution.objects.get().status == "sent"
        )
    )
    execution.refresh_from_db()
    assert execution.status == "sent" and execution.attempts == 2
    keys = [d["key"] for d in receiver.deliveries]
    assert keys == [execution.idempotency_key, execution.idempotency_key]
    assert list(receiver.effects) == [execution.idempotency_key]

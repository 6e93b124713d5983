"""Exactly-once actions: a task delivered twice, two workers racing, webhook signatures,
retries with backoff and a clean terminal failure for a bad webhook URL."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from campaigns import services
from campaigns.dispatch import backoff, dispatch_due
from campaigns.models import Coupon, Enrollment, StepExecution
from campaigns.tasks import dispatch_task
from campaigns.tick import plans_tick
from tests.campaigns.conftest import T0, quiet_customers


def webhook_plan(user, url, *, name="Hooks", secret="s3cret"):
    plan = services.plan_create(
        user=user,
        name=name,
        trigger_kind="stage_entered",
        trigger_params={"stage": "cooling"},
        holdout_percent=0,
    )
    services.step_add(
        plan=plan,
        user=user,
        action="webhook",
        delay_days=0,
        config={"url": url, "event": "winback", "secret": secret},
    )
    services.plan_launch(plan, user, now=T0 - timedelta(hours=1))
    return plan


def due_now(n, plan_factory):
    quiet_customers(n)
    plan = plan_factory()
    plans_tick(now=T0 + timedelta(minutes=1))
    assert StepExecution.objects.filter(plan=plan, status="pending").count() == n
    return plan


def test_second_delivery_of_the_dispatch_task_sends_nothing(marketer, receiver):
    due_now(6, lambda: webhook_plan(marketer, receiver.url))
    first = dispatch_task.apply().get()
    second = dispatch_task.apply().get()
    assert first["sent"] == 6
    assert second == {"claimed": 0, "sent": 0, "failed": 0}
    assert len(receiver.deliveries) == 6
    assert len({d["key"] for d in receiver.deliveries}) == 6


def test_webhook_is_signed_with_hmac_sha256_and_carries_the_idempotency_key(marketer, receiver):
    due_now(1, lambda: webhook_plan(marketer, receiver.url))
    dispatch_due(now=T0 + timedelta(minutes=2))
    delivery = receiver.deliveries[0]
    execution = StepExecution.objects.get()
    assert delivery["key"] == execution.idempotency_key
    parts = dict(item.split("=", 1) for item in delivery["signature"].split(","))
    expected = hmac.new(
        b"s3cret", parts["t"].encode() + b"." + delivery["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    payload = json.loads(delivery["body"])
    assert payload["event"] == "winback"
    assert payload["idempotency_key"] == execution.idempotency_key
    assert payload["customer"]["id"] == execution.customer_id
    assert execution.status == "sent" and execution.result == {"status": 200}


def test_bad_webhook_url_retries_with_backoff_then_fails_cleanly(marketer, settings):
    settings.CAMPAIGNS_MAX_ATTEMPTS = 3
    # Nothing listens on port 9 of localhost: connection refused, a transient error.
    due_now(1, lambda: webhook_plan(marketer, "http://127.0.0.1:9/hook"))
    execution = StepExecution.objects.get()
    at = T0 + timedelta(minutes=2)
    dispatch_due(now=at)
    execution.refresh_from_db()
    assert execution.status == "pending" and execution.attempts == 1
    assert execution.next_attempt_at == at + backoff(1)
    assert "cannot reach" in execution.error
    # Not due before the backoff has passed.
    assert dispatch_due(now=at + backoff(1) - timedelta(seconds=1)).claimed == 0
    at = at + backoff(1)
    dispatch_due(now=at)
    execution.refresh_from_db()
    assert execution.attempts == 2 and execution.next_attempt_at == at + backoff(2)
    dispatch_due(now=at + backoff(2))
    execution.refresh_from_db()
    assert execution.status == "failed" and execution.attempts == 3
    assert "gave up after 3 attempts" in execution.error
    assert dispatch_due(now=at + timedelta(days=30)).claimed == 0


def test_http_4xx_fails_at_once_and_5xx_retries(marketer, receiver):
    due_now(1, lambda: webhook_plan(marketer, receiver.url))
    receiver.status = 503
    dispatch_due(now=T0 + timedelta(minutes=2))
    execution = StepExecution.objects.get()
    assert execution.status == "pending" and "HTTP 503" in execution.error
    receiver.status = 400
    dispatch_due(now=T0 + timedelta(days=1))
    execution.refresh_from_db()
    assert execution.status == "failed" and "HTTP 400" in execution.error


def test_the_email_message_id_is_the_same_on_every_attempt(marketer, outbox):
    quiet_customers(1)
    plan = services.plan_create(
        user=marketer,
        name="Mail",
        trigger_kind="stage_entered",
        trigger_params={"stage": "cooling"},
        holdout_percent=0,
    )
    services.step_add(
        plan=plan, user=marketer, action="email", config={"subject": "Hi", "body_text": "Hello"}
    )
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    plans_tick(now=T0 + timedelta(minutes=1))
    dispatch_due(now=T0 + timedelta(minutes=2))
    execution = StepExecution.objects.get()
    # Simulate a worker that sent and died before recording: back to an expired lease.
    StepExecution.objects.filter(pk=execution.pk).update(
        status="sending", next_attempt_at=T0, lease_until=T0
    )
    dispatch_due(now=T0 + timedelta(minutes=10))
    assert len(outbox) == 2
    assert outbox[0].extra_headers["Message-ID"] == outbox[1].extra_headers["Message-ID"]
    assert execution.idempotency_key in outbox[0].extra_headers["Message-ID"]


def test_a_coupon_is_created_once_even_when_recorded_after_a_lost_lease(marketer, outbox):
    quiet_customers(1)
    plan = services.plan_create(
        user=marketer,
        name="Coupon",
        trigger_kind="stage_entered",
        trigger_params={"stage": "cooling"},
        holdout_percent=0,
    )
    services.step_add(plan=plan, user=marketer, action="coupon", config={"value": 15})
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    plans_tick(now=T0 + timedelta(minutes=1))
    dispatch_due(now=T0 + timedelta(minutes=2))
    dispatch_due(now=T0 + timedelta(minutes=3))
    assert Coupon.objects.count() == 1
    assert StepExecution.objects.get().result["code"] == Coupon.objects.get().code


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_workers_never_send_the_same_action_twice(marketer, receiver):
    if connection.vendor != "postgresql":
        pytest.skip("SKIP LOCKED race needs PostgreSQL")
    n = 120
    due_now(n, lambda: webhook_plan(marketer, receiver.url))
    start = threading.Barrier(4)
    results = []

    def worker():
        try:
            start.wait()
            results.append(dispatch_due(batch_size=7))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    keys = [d["key"] for d in receiver.deliveries]
    assert len(keys) == n and len(set(keys)) == n
    assert sum(r.sent for r in results) == n
    assert sum(1 for r in results if r.claimed) >= 2  # the work really was shared
    assert StepExecution.objects.filter(status="sent").count() == n


def test_paused_plan_sends_nothing_until_resumed(marketer, receiver):
    plan = due_now(2, lambda: webhook_plan(marketer, receiver.url))
    services.plan_pause(plan, marketer)
    assert dispatch_due(now=T0 + timedelta(minutes=2)).claimed == 0
    services.plan_resume(plan, marketer, now=timezone.now())
    assert dispatch_due(now=T0 + timedelta(minutes=3)).sent == 2


def test_stopped_enrollment_cancels_its_pending_action(marketer, receiver):
    due_now(1, lambda: webhook_plan(marketer, receiver.url))
    services.enrollment_stop(Enrollment.objects.get(), marketer, reason="asked us to")
    assert dispatch_due(now=T0 + timedelta(minutes=2)).claimed == 0
    assert StepExecution.objects.get().status == "cancelled"
    assert receiver.deliveries == []

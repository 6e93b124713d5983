"""Fixtures for plan tests: a clock, quiet customers, plans with steps, a webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from campaigns import services
from campaigns.models import Plan
from customers.engine.stages import STAGE_CODE
from customers.models import Customer, Engagement, ScoreState, StageChange
from tests.api.conftest import admin_api, api, cs_api, marketer_api, token_client  # noqa: F401
from tests.factories import CustomerFactory

T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def quiet_customers(n: int, *, at: datetime = T0, stage: str = "cooling", **fields) -> list:
    """``n`` customers whose last action was 20 days before ``at`` and who entered ``stage``
    at ``at`` (a stage-change row, as the engine writes)."""
    customers = [CustomerFactory(**fields) for _ in range(n)]
    ids = [c.pk for c in customers]
    Engagement.objects.filter(customer_id__in=ids).update(stage=stage, stage_since=at)
    ScoreState.objects.filter(customer_id__in=ids).update(
        last_engagement_at=at - timedelta(days=20),
        first_engagement_at=at - timedelta(days=200),
        frequency=10,
        expected_gap_days=5.0,
        stage_code=STAGE_CODE[stage],  # the engine's copy of the stage, as it writes it
        stage_since=at,
    )
    StageChange.objects.bulk_create(
        StageChange(customer_id=pk, from_stage="engaged", to_stage=stage, changed_at=at, score=20)
        for pk in ids
    )
    return list(Customer.objects.filter(pk__in=ids).order_by("pk"))


def comes_back(customer: Customer, at: datetime) -> None:
    """The engine saw an engagement action at ``at`` (what a refresh writes)."""
    Engagement.objects.filter(customer=customer).update(stage="reengaged")
    ScoreState.objects.filter(customer=customer).update(last_engagement_at=at)


def three_step_plan(user, *, name: str = "Win back", holdout: int = 10, **fields) -> Plan:
    """Day 7 email, day 14 coupon, then (same day) an email showing the coupon."""
    plan = services.plan_create(
        user=user,
        name=name,
        trigger_kind=fields.pop("trigger_kind", "stage_entered"),
        trigger_params=fields.pop("trigger_params", {"stage": "cooling"}),
        holdout_percent=holdout,
        **fields,
    )
    services.step_add(
        plan=plan,
        user=user,
        action="email",
        delay_days=7,
        config={
            "subject": "We miss you, {{ first_name }}",
            "body_text": "Hi {{ name }}, it has been {{ days_since_last_action }} days. "
            "Your score is {{ score }}.",
        },
    )
    services.step_add(
        plan=plan,
        user=user,
        action="coupon",
        delay_days=14,
        config={"kind": "amount", "value": 20, "expires_days": 30},
    )
    services.step_add(
        plan=plan,
        user=user,
        action="email",
        delay_days=0,
        delay_basis="previous_step",
        config={
            "subject": "A gift for you",
            "body_text": "Use {{ coupon_code }} for {{ coupon_value }} until {{ coupon_expires }}.",
            "body_html": "<p>Use <b>{{ coupon_code }}</b> for {{ coupon_value }}.</p>",
        },
    )
    return plan


@pytest.fixture
def outbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    return mail.outbox


class Receiver:
    """A local HTTP webhook receiver that records every delivery and deduplicates effects by
    Idempotency-Key, as a well-behaved ESP or CRM does."""

    def __init__(self) -> None:
        self.deliveries: list[dict] = []
        self.effects: dict[str, dict] = {}
        self.status = 200
        self.hold = threading.Event()
        self.hold.set()
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    receiver.deliveries.append(
                        {
                            "key": key,
                            "signature": self.headers.get("X-Lifecycle-Signature", ""),
                            "body": body,
                        }
                    )
                    if receiver.status < 300:
                        receiver.effects.setdefault(key, json.loads(body))
                receiver.arrived.set()
                receiver.hold.wait(30)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args) -> None:
                pass

        # Racing dispatchers open dozens of connections at once: a deep accept queue, so the
        # kernel does not reset them (which would look like a transient failure).
        ThreadingHTTPServer.request_queue_size = 256
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()

"""Two requests that create the same new customer at once (PostgreSQL: real row locks)."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction

from customers.models import Customer, Engagement, PendingTouchpoint, Touchpoint
from tracking.messages import message_parse
from tracking.services import source_create, tracking_ingest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def parse(kind: str, raw: dict):
    return message_parse(
        raw,
        kind=kind,
        index=None,
        batch_sent_at=None,
        received_at=NOW,
        future_skew=timedelta(minutes=5),
    )


def test_a_customer_created_by_two_requests_at_once_exists_once():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two open write transactions at once")
    source, _ = source_create(name="Race")
    inserted, may_commit = threading.Event(), threading.Event()
    results, errors = {}, []

    def first():
        try:
            with transaction.atomic():
                first_track = {"userId": "race-1", "event": "Signed In", "messageId": "a"}
                results["first"] = tracking_ingest(
                    source=source,
                    endpoint="track",
                    messages=[parse("track", first_track)],
                    received_at=NOW,
                )
                inserted.set()
                assert may_commit.wait(30)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    def second():
        try:
            results["second"] = tracking_ingest(
                source=source,
                endpoint="track",
                messages=[
                    parse("track", {"userId": "race-1", "event": "Signed In", "messageId": "b"}),
                    parse("identify", {"userId": "race-1", "traits": {"email": "r@example.com"}}),
                ],
                received_at=NOW,
            )
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    a = threading.Thread(target=first)
    a.start()
    assert inserted.wait(30)
    b = threading.Thread(target=second)
    b.start()  # blocks on the new customer's unique key until the first commits
    b.join(1)
    assert b.is_alive()
    may_commit.set()
    a.join(30)
    b.join(30)
    assert errors == []
    assert results["first"].customers_created == 1
    assert results["second"].customers_created == 0
    customer = Customer.objects.get(external_id="race-1")
    assert Engagement.objects.filter(customer=customer).count() == 1
    assert Touchpoint.objects.filter(customer=customer).count() == 2
    # the losing request's identify still lands on the one row
    assert (customer.email, customer.is_identified) == ("r@example.com", True)
    assert PendingTouchpoint.objects.filter(customer_id=customer.pk).count() == 2

"""The official Segment client (``segment-analytics-python``) against a live server."""

from datetime import UTC, datetime, timedelta

import pytest
from segment.analytics import Client
from segment.analytics import request as segment_request

from customers.models import Customer, PendingTouchpoint, Touchpoint
from tracking.models import RejectedMessage, UnmappedEvent
from tracking.services import source_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def _connections(fresh_db_connections):
    yield
    segment_request._session.close()


def segment_client(url: str, key: str, errors: list) -> Client:
    return Client(
        write_key=key,
        host=url,
        gzip=True,
        upload_size=100,  # the client's default batch size: 230 messages = 3 batches
        upload_interval=0.05,
        max_retries=1,
        on_error=lambda error, batch: errors.append((error, len(batch))),
    )


def send_all(client: Client, old: datetime) -> None:
    client.identify(
        "u-1",
        {"email": "ada@example.com", "name": "Ada King", "plan": "Growth", "seats": 12},
        message_id="identify-1",
    )
    client.track("u-1", "Signed In", {"method": "sso"}, message_id="track-1")
    client.page("u-1", category="Docs", name="Install", message_id="page-1")
    client.track("u-1", "Playlist Shared", {"to": "team"}, message_id="unmapped-1")
    client.group("u-1", "org-7", {"name": "Analytical Engines"}, message_id="group-1")
    for i in range(225):
        client.track(
            f"buyer-{i % 9}",
            "Order Completed",
            {"revenue": 10 + i, "order_id": f"o-{i}"},
            timestamp=old + timedelta(hours=i),  # a backfill of old orders
            message_id=f"order-{i}",
        )
    client.flush()


def test_identify_track_and_batches_arrive_once_even_when_resent(live_server):
    source, key = source_create(name="Python backend")
    errors: list = []
    old = datetime(2026, 1, 5, 8, tzinfo=UTC)
    client = segment_client(live_server.url, key, errors)
    send_all(client, old)
    client.shutdown()
    assert errors == []

    ada = Customer.objects.get(external_id="u-1")
    assert (ada.email, ada.name, ada.plan, ada.company) == (
        "ada@example.com",
        "Ada King",
        "Growth",
        "Analytical Engines",
    )
    assert ada.is_identified and ada.traits["seats"] == 12
    assert set(Touchpoint.objects.filter(customer=ada).values_list("type__key", flat=True)) == {
        "login",
        "page_view",
    }
    orders = Touchpoint.objects.filter(type__key="purchase")
    assert orders.count() == 225
    # corrected by receivedAt − sentAt: the same clock here, so only the transit time moves it
    first = orders.order_by("occurred_at").first().occurred_at
    assert timedelta(0) <= first - old < timedelta(seconds=2)
    assert sorted({str(v) for v in orders.values_list("value", flat=True)})[:2] == [
        "10.00",
        "100.00",
    ]
    assert set(orders.values_list("source", flat=True)) == {source.slug}
    buyers = Customer.objects.filter(external_id__startswith="buyer-")
    assert buyers.count() == 9 and not buyers.filter(is_identified=True).exists()
    assert UnmappedEvent.objects.get().message_id == "unmapped-1"
    assert PendingTouchpoint.objects.count() == 227
    assert not RejectedMessage.objects.exists()

    # A second client resends the very same messages: nothing new is created.
    again = segment_client(live_server.url, key, errors)
    send_all(again, old)
    again.shutdown()
    assert errors == []
    assert Touchpoint.objects.count() == 227 and UnmappedEvent.objects.count() == 1
    assert Customer.objects.count() == 10


def test_the_client_reports_a_revoked_key(live_server):
    source, key = source_create(name="Old key")
    source.keys.update(revoked_at=datetime.now(UTC))
    errors: list = []
    client = segment_client(live_server.url, key, errors)
    client.track("u", "Signed In")
    client.flush()
    client.shutdown()
    assert [(e.status, e.code, n) for e, n in errors] == [(401, "unauthorized", 1)]
    assert not Touchpoint.objects.exists()

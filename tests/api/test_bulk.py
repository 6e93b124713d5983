"""POST /api/v1/touchpoints/bulk/: validation by index, atomic vs partial, idempotency."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from api.bulk import MAX_ITEMS
from customers.models import PendingTouchpoint, Touchpoint
from tests.factories import CustomerFactory

BULK = "/api/v1/touchpoints/bulk/"


def item(n: int, **changes) -> dict:
    return {
        "customer_external_id": f"c{n % 3}",
        "type": "login",
        "occurred_at": "2026-01-05T10:00:00+02:00",
        "idempotency_key": f"evt-{n}",
        "value": "12.5",
        "properties": {"n": n},
        **changes,
    }


@pytest.fixture
def customers(db):
    return [CustomerFactory(external_id=f"c{i}") for i in range(3)]


def test_atomic_batch_is_stored_and_queued_for_the_engine(marketer_api, customers):
    response = marketer_api.post(BULK, {"items": [item(n) for n in range(5)]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "mode": "atomic",
        "received": 5,
        "created": 5,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
    }
    stored = Touchpoint.objects.order_by("idempotency_key")
    assert stored.count() == 5
    first = stored.first()
    assert first.occurred_at == datetime(2026, 1, 5, 8, tzinfo=UTC)
    assert str(first.value) == "12.50" and first.properties == {"n": 0}
    assert first.source == "api" and first.customer.external_id == "c0"
    pending = set(PendingTouchpoint.objects.values_list("touchpoint_id", "customer_id"))
    assert pending == set(stored.values_list("id", "customer_id"))


def test_repeated_batch_creates_nothing_new(marketer_api, customers):
    batch = {"source": "shop", "items": [item(n) for n in range(4)]}
    assert marketer_api.post(BULK, batch, format="json").json()["created"] == 4
    again = marketer_api.post(BULK, batch, format="json").json()
    assert (again["created"], again["duplicates"]) == (0, 4)
    batch["items"].append(item(99))
    more = marketer_api.post(BULK, batch, format="json").json()
    assert (more["created"], more["duplicates"]) == (1, 4)
    assert Touchpoint.objects.count() == PendingTouchpoint.objects.count() == 5


def test_same_key_in_another_source_is_a_different_event(marketer_api, customers):
    marketer_api.post(BULK, {"source": "a", "items": [item(1)]}, format="json")
    response = marketer_api.post(BULK, {"source": "b", "items": [item(1)]}, format="json")
    assert response.json()["created"] == 1
    item_source = marketer_api.post(BULK, {"items": [item(1, source="a")]}, format="json")
    assert item_source.json()["duplicates"] == 1


def test_duplicate_key_inside_one_batch_keeps_the_first(marketer_api, customers):
    items = [item(1), item(2), item(1, type="purchase")]
    body = marketer_api.post(BULK, {"items": items}, format="json").json()
    assert (body["created"], body["duplicates"]) == (2, 1)
    assert Touchpoint.objects.get(idempotency_key="evt-1").type.key == "login"


def test_atomic_with_one_bad_item_stores_nothing(marketer_api, customers):
    items = [item(n) for n in range(4)]
    items[2]["occurred_at"] = "2026-01-05T10:00:00"
    response = marketer_api.post(BULK, {"items": items}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert (body["created"], body["rejected"]) == (0, 1)
    assert "Nothing was stored" in body["detail"]
    assert body["errors"][0]["index"] == 2
    assert "no timezone" in body["errors"][0]["errors"]["occurred_at"][0]
    assert Touchpoint.objects.count() == PendingTouchpoint.objects.count() == 0


def test_partial_keeps_good_items_and_lists_bad_ones(marketer_api, customers):
    future = (timezone.now() + timedelta(hours=2)).isoformat()
    items = [
        item(0),
        item(1, occurred_at="2026-01-05 10:00"),  # naive
        item(2, occurred_at=future),
        item(3, type="teleport"),
        item(4, customer_external_id="ghost"),
        item(5),
        item(6, idempotency_key=None),
        item(7, value="lots", properties=[1]),
        "not an object",
        item(9, occurred_at="yesterday"),
        item(10, customer_external_id=7, type=None),
    ]
    response = marketer_api.post(BULK, {"mode": "partial", "items": items}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert (body["received"], body["created"], body["rejected"]) == (11, 2, 9)
    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert set(errors) == {1, 2, 3, 4, 6, 7, 8, 9, 10}
    assert "no timezone" in errors[1]["occurred_at"][0]
    assert "in the future" in errors[2]["occurred_at"][0]
    assert "Unknown touchpoint type 'teleport'" in errors[3]["type"][0]
    assert "No customer with external_id 'ghost'" in errors[4]["customer_external_id"][0]
    assert "idempotency_key is required" in errors[6]["idempotency_key"][0]
    assert set(errors[7]) == {"value", "properties"}
    assert "object" in errors[8]["non_field_errors"][0]
    assert "ISO 8601" in errors[9]["occurred_at"][0]
    assert set(errors[10]) == {"customer_external_id", "type"}
    assert set(Touchpoint.objects.values_list("idempotency_key", flat=True)) == {"evt-0", "evt-5"}


def test_small_clock_skew_is_accepted_and_old_events_are_backfilled(marketer_api, customers):
    soon = (timezone.now() + timedelta(seconds=60)).isoformat()
    items = [item(0, occurred_at=soon), item(1, occurred_at="2019-03-01T00:00:00Z")]
    assert marketer_api.post(BULK, {"items": items}, format="json").json()["created"] == 2


def test_future_skew_is_configurable(marketer_api, customers, settings):
    settings.MAX_FUTURE_SKEW_SECONDS = 0
    soon = (timezone.now() + timedelta(seconds=60)).isoformat()
    response = marketer_api.post(BULK, {"items": [item(0, occurred_at=soon)]}, format="json")
    assert "more than 0 seconds ahead" in response.json()["errors"][0]["errors"]["occurred_at"][0]


def test_inactive_type_is_rejected(marketer_api, customers):
    from customers.models import TouchpointType

    TouchpointType.objects.filter(key="login").update(is_active=False)
    body = marketer_api.post(BULK, {"items": [item(0)]}, format="json").json()
    assert "switched off" in body["errors"][0]["errors"]["type"][0]


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ([], "non_field_errors", "JSON object"),
        ({"items": []}, "items", "empty"),
        ({}, "items", "required"),
        ({"items": "x"}, "items", "list"),
        ({"mode": "some", "items": [1]}, "mode", "partial"),
        ({"source": "", "items": [1]}, "source", "64"),
        ({"items": [{}] * (MAX_ITEMS + 1)}, "items", "at most 10,000"),
    ],
)
def test_malformed_envelope_is_400_with_the_field(marketer_api, db, payload, field, words):
    response = marketer_api.post(BULK, payload, format="json")
    assert response.status_code == 400
    assert words in response.json()[field][0]


def test_malformed_json_is_400(marketer_api, db):
    response = marketer_api.post(BULK, '{"items": [', content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_oversize_body_is_413(marketer_api, db, settings):
    settings.API_BULK_MAX_BODY_BYTES = 1000
    items = [item(n) for n in range(50)]
    response = marketer_api.post(BULK, {"items": items}, format="json")
    assert response.status_code == 413
    assert "Split the batch" in response.json()["detail"]


def test_full_batch_of_10000_in_constant_queries(
    marketer_api, customers, django_assert_max_num_queries
):
    items = [item(n) for n in range(MAX_ITEMS)]
    # token, last-used, customers, types, one INSERT (PostgreSQL); SQLite chunks its inserts
    # by its 999-variable limit (~120 rows), still never a query per item.
    limit = 10 if connection.vendor == "postgresql" else 10 + 2 * (MAX_ITEMS // 110)
    with django_assert_max_num_queries(limit):
        response = marketer_api.post(BULK, {"items": items}, format="json")
    assert response.json()["created"] == MAX_ITEMS
    assert PendingTouchpoint.objects.count() == MAX_ITEMS


@pytest.mark.postgres
@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="SQLite serializes writers; the race needs PostgreSQL",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_identical_batches_store_each_event_once(token_client):
    from customers.roles import Role

    for i in range(3):
        CustomerFactory(external_id=f"c{i}")
    body = json.dumps({"items": [item(n) for n in range(500)]})
    clients = [token_client(Role.MARKETER) for _ in range(4)]
    results: list[dict] = []

    def send(client):
        try:
            results.append(client.post(BULK, body, content_type="application/json").json())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["created"] for r in results) == 500
    assert sum(r["duplicates"] for r in results) == 1500
    assert Touchpoint.objects.count() == PendingTouchpoint.objects.count() == 500


def test_nul_characters_are_refused_not_a_500(marketer_api, customers):
    items = [item(0, properties={"note": "a\x00b"}), item(1, idempotency_key="k\x00")]
    body = marketer_api.post(BULK, {"mode": "partial", "items": items}, format="json").json()
    errors = {e["index"]: e["errors"] for e in body["errors"]}
    assert "NUL" in errors[0]["properties"][0] and "NUL" in errors[1]["idempotency_key"][0]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"idempotency_key": "k" * 256}, "idempotency_key", "longer than 255"),
        ({"customer_external_id": "c" * 256}, "customer_external_id", "longer than 255"),
        ({"source": "s" * 65}, "source", "longer than 64"),
        ({"type": "t" * 65}, "type", "longer than 64"),
        ({"customer_external_id": "c\x00"}, "customer_external_id", "NUL"),
        ({"source": "s\x00"}, "source", "NUL"),
        ({"type": "login\x00"}, "type", "NUL"),
        ({"occurred_at": "2026-01-05T10:00:00"}, "occurred_at", "no timezone"),
    ],
)
def test_overlong_and_nul_fields_are_400_by_index(marketer_api, customers, changes, field, words):
    items = [item(0), item(1, **changes)]
    response = marketer_api.post(BULK, {"items": items}, format="json")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["index"] == 1 and words in error["errors"][field][0]
    assert not Touchpoint.objects.exists()


def test_overlong_batch_source_is_400(marketer_api, customers):
    response = marketer_api.post(BULK, {"source": "s" * 65, "items": [item(0)]}, format="json")
    assert response.status_code == 400 and "1 to 64" in response.json()["source"][0]
    response = marketer_api.post(BULK, {"source": "s\x00", "items": [item(0)]}, format="json")
    assert response.status_code == 400 and "NUL" in response.json()["source"][0]


def test_the_documented_partial_example_answers_as_docs_api_md_shows(marketer_api, db):
    CustomerFactory(external_id="acme-42")
    items = [
        {
            "customer_external_id": "acme-42",
            "type": "purchase",
            "occurred_at": "2026-06-01T12:00:00Z",
            "idempotency_key": "order-1001",
            "value": "49.00",
            "properties": {"sku": "A7"},
        },
        {"customer_external_id": "acme-42", "type": "login", "occurred_at": "2026-06-01T11:58:00"},
    ]
    body = marketer_api.post(
        BULK, {"mode": "partial", "source": "shop", "items": items}, format="json"
    ).json()
    assert (body["created"], body["duplicates"], body["rejected"]) == (1, 0, 1)
    errors = body["errors"][0]["errors"]
    assert errors["occurred_at"][0].startswith("This timestamp has no timezone.")
    assert errors["idempotency_key"][0].startswith("idempotency_key is required. Bulk items")

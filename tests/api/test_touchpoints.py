"""Single touchpoints and the touchpoint list; touchpoint types."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from customers.models import PendingTouchpoint, Touchpoint, TouchpointType
from customers.roles import Role
from tests.factories import CustomerFactory, TouchpointFactory

TOUCHPOINTS = "/api/v1/touchpoints/"
TYPES = "/api/v1/touchpoint-types/"


def test_create_goes_through_the_engine_queue(marketer_api, db):
    customer = CustomerFactory(external_id="c1")
    payload = {
        "customer_external_id": "c1",
        "type": "purchase",
        "occurred_at": "2026-02-01T09:30:00-05:00",
        "value": "99.90",
        "idempotency_key": "order-7",
        "properties": {"sku": "A"},
    }
    response = marketer_api.post(TOUCHPOINTS, payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["customer"] == customer.pk and body["customer_external_id"] == "c1"
    assert body["type"] == "purchase" and body["channel"] == "billing"
    touchpoint = Touchpoint.objects.get()
    assert touchpoint.occurred_at == datetime(2026, 2, 1, 14, 30, tzinfo=UTC)
    assert PendingTouchpoint.objects.get().touchpoint_id == touchpoint.pk
    again = marketer_api.post(TOUCHPOINTS, payload, format="json")
    assert again.status_code == 200 and again.json()["id"] == touchpoint.pk
    payload.pop("customer_external_id")
    by_id = marketer_api.post(TOUCHPOINTS, {**payload, "customer": customer.pk}, format="json")
    assert by_id.status_code == 200 and by_id.json()["id"] == touchpoint.pk


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"occurred_at": "2026-02-01T09:30:00"}, "occurred_at", "no timezone"),
        ({"occurred_at": "2026-02-01"}, "occurred_at", "no timezone"),
        ({"occurred_at": "soon"}, "occurred_at", "ISO 8601"),
        ({"type": "teleport"}, "type", "does not exist"),
        ({"customer_external_id": "ghost"}, "customer_external_id", "No customer"),
        ({"customer_external_id": None, "customer": 99999}, "customer", "does not exist"),
        ({"value": "abc"}, "value", "number"),
        ({"properties": [1]}, "properties", "dictionary"),
        ({"idempotency_key": "k" * 256}, "idempotency_key", "no more than 255"),
        ({"idempotency_key": "k\x00"}, "idempotency_key", "Null characters"),
        ({"source": "s" * 65}, "source", "no more than 64"),
        ({"customer_external_id": "c" * 256}, "customer_external_id", "255"),
        ({"customer_external_id": "c\x00"}, "customer_external_id", "ull character"),
        ({"properties": {"note": "a\x00b"}}, "properties", "NUL"),
    ],
)
def test_create_validation_messages(marketer_api, db, changes, field, words):
    CustomerFactory(external_id="c1")
    payload = {"customer_external_id": "c1", "type": "login", "occurred_at": "2026-02-01T09:30Z"}
    payload = {k: v for k, v in {**payload, **changes}.items() if v is not None}
    response = marketer_api.post(TOUCHPOINTS, payload, format="json")
    assert response.status_code == 400
    assert words in " ".join(response.json()[field])
    assert Touchpoint.objects.count() == 0


def test_future_timestamp_is_rejected(marketer_api, db):
    CustomerFactory(external_id="c1")
    later = (timezone.now() + timedelta(hours=1)).isoformat()
    payload = {"customer_external_id": "c1", "type": "login", "occurred_at": later}
    response = marketer_api.post(TOUCHPOINTS, payload, format="json")
    assert "in the future" in response.json()["occurred_at"][0]


def test_customer_must_be_named_once(marketer_api, db):
    customer = CustomerFactory(external_id="c1")
    payload = {"type": "login", "occurred_at": "2026-02-01T09:30Z"}
    assert (
        "Give customer"
        in marketer_api.post(TOUCHPOINTS, payload, format="json").json()["customer"][0]
    )
    both = {**payload, "customer": customer.pk, "customer_external_id": "c1"}
    assert "not both" in marketer_api.post(TOUCHPOINTS, both, format="json").json()["customer"][0]


def test_list_filters_and_pages(marketer_api, db):
    a, b = CustomerFactory(external_id="a"), CustomerFactory(external_id="b")
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    login, purchase = (TouchpointType.objects.get(key=k) for k in ("login", "purchase"))
    for i in range(10):
        TouchpointFactory(
            customer=a if i % 2 else b,
            type=purchase if i % 5 == 0 else login,
            occurred_at=t0 + timedelta(days=i),
        )

    def ids(query: str) -> list[int]:
        rows, url = [], TOUCHPOINTS + query
        while url:
            body = marketer_api.get(url).json()
            rows += [r["id"] for r in body["results"]]
            url = body["next"]
        return rows

    everything = ids("?page_size=3")
    assert len(everything) == 10 and everything == sorted(everything, reverse=True)
    assert len(ids("?customer_external_id=a")) == 5
    assert len(ids(f"?customer={b.pk}&type=purchase")) == 1
    assert len(ids("?channel=billing")) == 2
    assert len(ids("?occurred_after=2026-03-03T00:00:00Z&occurred_before=2026-03-05T00:00Z")) == 2
    assert ids("?ordering=-occurred_at&page_size=3") == everything  # times follow ids here
    by_time = marketer_api.get(TOUCHPOINTS + "?ordering=occurred_at&page_size=2").json()
    assert by_time["results"][0]["occurred_at"].startswith("2026-03-01")
    assert marketer_api.get(TOUCHPOINTS + "?channel=pigeon").status_code == 400
    one = marketer_api.get(f"{TOUCHPOINTS}{everything[0]}/")
    assert one.status_code == 200 and one.json()["customer_external_id"] in {"a", "b"}


def test_touchpoint_list_queries_are_bounded(marketer_api, db, django_assert_max_num_queries):
    customer = CustomerFactory()
    for _ in range(30):
        TouchpointFactory(customer=customer)
    with django_assert_max_num_queries(3):
        assert len(marketer_api.get(TOUCHPOINTS).json()["results"]) == 30


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_types(token_client, role):
    body = token_client(role).get(TYPES).json()
    assert {"key": "login", "channel": "product"}.items() <= body[0].items() or any(
        t["key"] == "login" for t in body
    )


def test_admin_weight_change_starts_a_rescore(admin_api, marketer_api, monkeypatch):
    from customers import tasks

    started = []
    monkeypatch.setattr(tasks, "rescore_enqueue", lambda **kw: started.append(kw))
    response = admin_api.patch(f"{TYPES}login/", {"weight": "4.50"}, format="json")
    assert response.status_code == 200, response.json()
    assert TouchpointType.objects.get(key="login").weight == 4.5
    assert len(started) == 1 and "weight" in started[0]["reason"]
    admin_api.patch(f"{TYPES}login/", {"label": "Signed in"}, format="json")
    assert len(started) == 1  # a label is not part of any score
    assert marketer_api.patch(f"{TYPES}login/", {"weight": "9"}, format="json").status_code == 403
    bad = admin_api.patch(f"{TYPES}login/", {"weight": "500"}, format="json")
    assert bad.status_code == 400 and "weight" in bad.json()
    assert admin_api.delete(f"{TYPES}login/").status_code == 405


def test_admin_adds_a_type(admin_api, db):
    payload = {"key": "visit", "label": "Site visit", "channel": "in_person", "weight": "3"}
    assert admin_api.post(TYPES, payload, format="json").status_code == 201
    assert TouchpointType.objects.get(key="visit").weight == 3
    again = admin_api.post(TYPES, payload, format="json")
    assert again.status_code == 400 and "key" in again.json()

"""Customers through the API: list with shared filters and keyset pages, detail with
engagement and explanation, create, PATCH, upsert by external id."""

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from customers.engagement import engagement_refresh, touchpoint_add
from customers.models import Customer, Engagement, ScoreState, TouchpointType
from customers.roles import Role
from tests.factories import CustomerFactory, UserFactory

CUSTOMERS = "/api/v1/customers/"


def pages(client, url: str) -> tuple[list[dict], int]:
    """Every row following 'next' links, and the number of pages."""
    rows, count = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.json()
        body = response.json()
        rows += body["results"]
        url = body["next"]
        count += 1
    return rows, count


def test_list_shows_engagement_state(marketer_api, db):
    customer = CustomerFactory(region="Europe")
    body = marketer_api.get(CUSTOMERS).json()
    assert body["next"] is None
    [row] = body["results"]
    assert row["id"] == customer.pk and row["region"] == "Europe"
    assert row["engagement"]["stage"] == "new"
    assert row["engagement"]["score"] == 0
    assert row["engagement"]["recency_days"] is None
    assert "explanation" not in row


def test_list_uses_the_shared_customer_filter(marketer_api, db):
    CustomerFactory(external_id="eu", region="Europe")
    CustomerFactory(external_id="us", region="North America")
    lapsed = CustomerFactory(external_id="gone", region="Europe")
    Engagement.objects.filter(customer=lapsed).update(stage="lapsed")
    ids = lambda q: [r["external_id"] for r in marketer_api.get(CUSTOMERS + q).json()["results"]]  # noqa: E731
    assert ids("?region=Europe") == ["eu", "gone"]
    assert ids("?region=Europe&stage=lapsed") == ["gone"]
    assert ids("?q=us@example.com") == ["us"]
    response = marketer_api.get(CUSTOMERS + "?stage=sleepy")
    assert response.status_code == 400
    assert "sleepy" in response.json()["stage"][0]


def test_id_pages_cover_every_customer_once(marketer_api, db):
    made = [CustomerFactory().pk for _ in range(25)]
    rows, count = pages(marketer_api, CUSTOMERS + "?page_size=7")
    assert [r["id"] for r in rows] == made and count == 4
    rows, _ = pages(marketer_api, CUSTOMERS + "?page_size=10&ordering=-id")
    assert [r["id"] for r in rows] == made[::-1]


def test_score_pages_are_stable_with_ties(marketer_api, db):
    customers = [CustomerFactory() for _ in range(30)]
    # Three score levels with many ties: ids must break them, no row twice, none lost.
    for i, customer in enumerate(customers):
        ScoreState.objects.filter(customer=customer).update(decay_sum=float(i % 3))
    decay = dict(ScoreState.objects.values_list("customer_id", "decay_sum"))
    expected = sorted(decay, key=lambda pk: (decay[pk], pk))
    rows, count = pages(marketer_api, CUSTOMERS + "?ordering=-score&page_size=4")
    assert [r["id"] for r in rows] == expected[::-1] and count == 8
    rows, _ = pages(marketer_api, CUSTOMERS + "?ordering=score&page_size=4&region=")
    assert [r["id"] for r in rows] == expected
    scores = [r["engagement"]["score"] for r in rows]
    assert scores == sorted(scores) and scores[-1] > scores[0]


def test_rows_added_between_pages_shift_nothing(marketer_api, db):
    first = [CustomerFactory().pk for _ in range(6)]
    page = marketer_api.get(CUSTOMERS + "?page_size=3").json()
    CustomerFactory()
    Customer.objects.filter(pk=first[0]).delete()
    rest, _ = pages(marketer_api, page["next"])
    assert [r["id"] for r in rest][:3] == first[3:]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?cursor=garbage", "cursor"),
        ("?ordering=email", "ordering"),
        ("?page_size=0", "page_size"),
        ("?page_size=lots", "page_size"),
    ],
)
def test_bad_paging_parameters_are_400(marketer_api, db, query, field):
    response = marketer_api.get(CUSTOMERS + query)
    assert response.status_code == 400 and field in response.json()


def test_cursor_of_another_ordering_is_rejected(marketer_api, db):
    cursor = base64.urlsafe_b64encode(json.dumps({"o": "id", "v": None, "id": 1}).encode())
    response = marketer_api.get(f"{CUSTOMERS}?ordering=-score&cursor={cursor.decode()}")
    assert response.status_code == 400


def test_list_queries_do_not_grow_with_rows(marketer_api, db, django_assert_max_num_queries):
    owners = [UserFactory(), UserFactory()]
    for i in range(40):
        CustomerFactory(owner=owners[i % 2])
    # token, last-used, engine settings, the page; no query per row
    with django_assert_max_num_queries(5):
        body = marketer_api.get(CUSTOMERS + "?ordering=-score&region=&page_size=40").json()
    assert len(body["results"]) == 40


def test_detail_explains_score_and_stage(marketer_api, db):
    customer = CustomerFactory()
    now = timezone.now()
    for days, key in [(2, "purchase"), (3, "login"), (4, "login")]:
        touchpoint_add(
            customer=customer,
            type=TouchpointType.objects.get(key=key),
            occurred_at=now - timedelta(days=days),
        )
    engagement_refresh()
    body = marketer_api.get(f"{CUSTOMERS}{customer.pk}/").json()
    state, why = body["engagement"], body["explanation"]
    assert state["score"] > 0 and state["frequency"] == 3
    assert 1.9 < state["recency_days"] < 2.1
    assert [c["key"] for c in why["contributions"]] == ["purchase", "login"]
    assert why["contributions"][1]["touchpoints"] == 2
    assert abs(why["score"] - state["score"]) < 0.01
    assert why["stage"]["stage"] == state["stage"] and why["stage"]["rule"]
    assert why["stage"]["sentence"]


def test_missing_customer_is_404(marketer_api, db):
    assert marketer_api.get(f"{CUSTOMERS}999999/").status_code == 404


def test_create_gives_engine_rows_and_defaults(cs_api, db):
    response = cs_api.post(
        CUSTOMERS,
        {"external_id": "acme", "email": "ops@acme.test", "traits": {"seats": 40}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    customer = Customer.objects.get(external_id="acme")
    assert Engagement.objects.filter(customer=customer).exists()
    assert ScoreState.objects.filter(customer=customer).exists()
    assert body["signup_date"] == timezone.localdate().isoformat()
    assert body["engagement"]["stage"] == "new" and body["traits"] == {"seats": 40}


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"external_id": "taken"}, "external_id", "already exists"),
        ({}, "external_id", "required"),
        ({"external_id": "x", "email": "nope"}, "email", "valid email"),
        ({"external_id": "x", "spend_tier": "huge"}, "spend_tier", "not a valid choice"),
        ({"external_id": "x", "signup_date": "yesterday"}, "signup_date", "format"),
        ({"external_id": "x", "owner": "nobody"}, "owner", "does not exist"),
        ({"external_id": "x", "traits": [1]}, "traits", "JSON object"),
        ({"external_id": "x", "lifetime_revenue": "1e20"}, "lifetime_revenue", "digits"),
    ],
)
def test_create_validation_messages(cs_api, db, payload, field, words):
    CustomerFactory(external_id="taken")
    response = cs_api.post(CUSTOMERS, payload, format="json")
    assert response.status_code == 400
    assert words in " ".join(response.json()[field])


def test_patch_changes_only_given_fields(cs_api, db):
    owner = UserFactory(username="olga")
    customer = CustomerFactory(region="Europe", plan="Pro")
    response = cs_api.patch(
        f"{CUSTOMERS}{customer.pk}/", {"plan": "Growth", "owner": "olga"}, format="json"
    )
    assert response.status_code == 200, response.json()
    customer.refresh_from_db()
    assert (customer.plan, customer.region, customer.owner) == ("Growth", "Europe", owner)
    assert response.json()["owner"] == "olga"
    put = cs_api.put(f"{CUSTOMERS}{customer.pk}/", {"plan": "x"}, format="json")
    assert put.status_code == 405


def test_upsert_by_external_id_creates_then_updates(cs_api, db):
    url = f"{CUSTOMERS}by-external-id/crm-42/"
    assert cs_api.get(url).status_code == 404
    created = cs_api.put(url, {"name": "Ann", "region": "APAC"}, format="json")
    assert created.status_code == 201, created.json()
    updated = cs_api.put(url, {"name": "Ann Lee", "external_id": "ignored"}, format="json")
    assert updated.status_code == 200
    customer = Customer.objects.get(external_id="crm-42")
    assert (customer.name, customer.region) == ("Ann Lee", "APAC")
    assert Engagement.objects.filter(customer=customer).count() == 1
    assert cs_api.get(url).json()["name"] == "Ann Lee"
    bad = cs_api.put(url, {"email": "no"}, format="json")
    assert bad.status_code == 400 and "email" in bad.json()


def test_marketer_reads_but_does_not_edit_customers(token_client, db):
    customer = CustomerFactory()
    client = token_client(Role.MARKETER)
    assert client.get(f"{CUSTOMERS}{customer.pk}/").status_code == 200
    assert client.patch(f"{CUSTOMERS}{customer.pk}/", {"name": "x"}).status_code == 403
    assert client.put(f"{CUSTOMERS}by-external-id/new/", {}, format="json").status_code == 403


def test_nul_in_traits_and_overlong_external_id_are_400(cs_api, db):
    response = cs_api.post(CUSTOMERS, {"external_id": "n", "traits": {"a": "\x00"}}, format="json")
    assert response.status_code == 400 and "NUL" in response.json()["traits"][0]
    response = cs_api.put(f"{CUSTOMERS}by-external-id/{'x' * 300}/", {}, format="json")
    assert response.status_code == 400 and "255" in response.json()["external_id"][0]

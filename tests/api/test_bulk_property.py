"""Property: for any mix of good, bad and duplicate items, the bulk answer is exactly what
the database holds afterwards.

- ``atomic``: one bad item stores nothing (400); otherwise every good new item is stored.
- ``partial``: exactly the good items whose (source, key) is new are stored.
- Always ``created + duplicates + rejected == received``, errors name exactly the bad
  indexes, and sending the same batch again creates nothing.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import PendingTouchpoint, Touchpoint
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

BULK = "/api/v1/touchpoints/bulk/"
FLAWS = (
    None,
    None,
    None,
    None,
    "naive",
    "future",
    "unknown_customer",
    "unknown_type",
    "no_key",
    "bad_value",
    "nul",
    "long_key",
)

item_spec = st.fixed_dictionaries(
    {
        "key": st.sampled_from([f"k{i}" for i in range(12)]),
        "source": st.sampled_from([None, "shop", "crm"]),
        "customer": st.sampled_from(["p0", "p1", "p2"]),
        "type": st.sampled_from(["login", "purchase", "email_open"]),
        "days_ago": st.integers(0, 800),
        "flaw": st.sampled_from(FLAWS),
    }
)
batch_spec = st.fixed_dictionaries(
    {
        "mode": st.sampled_from(["atomic", "partial"]),
        "items": st.lists(item_spec, min_size=1, max_size=15),
    }
)


def item(spec: dict, now) -> dict:
    raw = {
        "customer_external_id": spec["customer"],
        "type": spec["type"],
        "occurred_at": (now - timedelta(days=spec["days_ago"])).isoformat(),
        "idempotency_key": spec["key"],
        "value": "1.50",
    }
    if spec["source"]:
        raw["source"] = spec["source"]
    flaw = spec["flaw"]
    if flaw == "naive":
        raw["occurred_at"] = raw["occurred_at"][:19]
    elif flaw == "future":
        raw["occurred_at"] = (now + timedelta(hours=3)).isoformat()
    elif flaw == "unknown_customer":
        raw["customer_external_id"] = "ghost"
    elif flaw == "unknown_type":
        raw["type"] = "teleport"
    elif flaw == "no_key":
        del raw["idempotency_key"]
    elif flaw == "bad_value":
        raw["value"] = "twelve"
    elif flaw == "nul":
        raw["properties"] = {"note": "a\x00b"}
    elif flaw == "long_key":
        raw["idempotency_key"] = "k" * 256
    return raw


@pytest.fixture
def people(db):
    return [CustomerFactory(external_id=f"p{i}") for i in range(3)]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(batch_spec, min_size=1, max_size=3))
def test_what_the_answer_says_is_what_is_stored(marketer_api, people, batches):
    stored = {
        (s, k): t
        for s, k, t in Touchpoint.objects.values_list("source", "idempotency_key", "type__key")
    }
    for batch in batches:
        now = timezone.now()
        payload = {"mode": batch["mode"], "items": [item(s, now) for s in batch["items"]]}
        bad = {i for i, s in enumerate(batch["items"]) if s["flaw"]}
        new: dict[tuple[str, str], str] = {}
        for s in batch["items"]:
            key = (s["source"] or "api", s["key"])
            if not s["flaw"] and key not in stored and key not in new:
                new[key] = s["type"]  # the first good occurrence wins
        response = marketer_api.post(BULK, payload, format="json")
        body = response.json()
        assert {e["index"] for e in body["errors"]} == bad
        assert body["received"] == len(batch["items"])
        atomic_refused = batch["mode"] == "atomic" and bool(bad)
        if atomic_refused:
            assert response.status_code == 400
            assert body["created"] == 0 and body["duplicates"] == 0
        else:
            assert response.status_code == 200
            assert body["created"] == len(new)
            assert body["created"] + body["duplicates"] + body["rejected"] == body["received"]
            stored.update(new)
        now_stored = {
            (s, k): t
            for s, k, t in Touchpoint.objects.values_list("source", "idempotency_key", "type__key")
        }
        assert now_stored == stored
        assert PendingTouchpoint.objects.count() == Touchpoint.objects.count()
        again = marketer_api.post(BULK, payload, format="json").json()
        assert again["created"] == 0
        assert Touchpoint.objects.count() == len(stored)

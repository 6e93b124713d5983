"""Property: for any batch, what the answer says was accepted is exactly what is stored."""

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Touchpoint
from tracking.models import RejectedMessage, UnmappedEvent

pytestmark = pytest.mark.django_db

MAPPED = ("Signed In", "Order Completed")
FLAWS = (None, None, None, "naive", "no_user", "future", "bad_properties", "no_event")

item = st.fixed_dictionaries(
    {
        "message_id": st.sampled_from([f"m{i}" for i in range(25)]),
        "user": st.sampled_from(["u1", "u2", "u3", "u4"]),
        "event": st.sampled_from([*MAPPED, "Mystery Event"]),
        "minutes_ago": st.integers(0, 60 * 24 * 400),
        "flaw": st.sampled_from(FLAWS),
    }
)


def message(spec: dict, now) -> dict:
    raw = {
        "type": "track",
        "userId": spec["user"],
        "event": spec["event"],
        "messageId": spec["message_id"],
        "timestamp": (now - timedelta(minutes=spec["minutes_ago"])).isoformat(),
    }
    flaw = spec["flaw"]
    if flaw == "naive":
        raw["timestamp"] = raw["timestamp"][:19]
    elif flaw == "no_user":
        del raw["userId"]
    elif flaw == "future":
        raw["timestamp"] = (now + timedelta(hours=2)).isoformat()
    elif flaw == "bad_properties":
        raw["properties"] = ["not", "an", "object"]
    elif flaw == "no_event":
        raw["event"] = ""
    return raw


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(item, min_size=1, max_size=12), min_size=1, max_size=3))
def test_accepted_is_exactly_what_is_stored(send, batches):
    expected_touchpoints = set(Touchpoint.objects.values_list("idempotency_key", flat=True))
    expected_unmapped = set(UnmappedEvent.objects.values_list("message_id", flat=True))
    for specs in batches:
        recorded_before = RejectedMessage.objects.count()
        now = timezone.now()
        response = send("batch", {"batch": [message(s, now) for s in specs]})
        body = response.json()
        bad = {i for i, s in enumerate(specs) if s["flaw"]}
        assert {r["index"] for r in body["rejected"]} == bad
        assert response.status_code == (400 if len(bad) == len(specs) else 200)
        assert RejectedMessage.objects.count() - recorded_before == len(bad)
        new_touchpoints = {
            s["message_id"] for s in specs if not s["flaw"] and s["event"] in MAPPED
        } - expected_touchpoints
        new_unmapped = {
            s["message_id"] for s in specs if not s["flaw"] and s["event"] not in MAPPED
        } - expected_unmapped
        if len(bad) < len(specs):
            assert body["accepted"] == len(specs) - len(bad)
            assert body["touchpoints_created"] == len(new_touchpoints)
            assert body["unmapped_stored"] == len(new_unmapped)
        expected_touchpoints |= new_touchpoints
        expected_unmapped |= new_unmapped
        assert set(Touchpoint.objects.values_list("idempotency_key", flat=True)) == (
            expected_touchpoints
        )
        assert Touchpoint.objects.count() == len(expected_touchpoints)
        assert set(UnmappedEvent.objects.values_list("message_id", flat=True)) == (
            expected_unmapped
        )

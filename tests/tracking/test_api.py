"""The /v1 endpoints through Django's full request stack (auth, limits, ingest, answers)."""

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from customers.engagement import engagement_refresh
from customers.models import Customer, Engagement, PendingTouchpoint, ScoreState, Touchpoint
from tests.tracking.conftest import basic
from tracking.models import RejectedMessage, UnmappedEvent
from tracking.services import write_key_revoke

pytestmark = pytest.mark.django_db


def iso(dt: datetime) -> str:
    return dt.isoformat()


def recent(**delta) -> str:
    return iso(timezone.now() - timedelta(**(delta or {"minutes": 1})))


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, basic("lcwk_not-a-key"), "Bearer abc", "Basic !!!", basic("")],
)
def test_it_answers_401_json_without_a_live_key(client, source_key, header):
    headers = {"HTTP_AUTHORIZATION": header} if header else {}
    response = client.post("/v1/track", "{}", content_type="application/json", **headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert "write key" in response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Basic")


def test_a_revoked_key_stops_working(send, source_key):
    payload = {"userId": "u1", "event": "Signed In", "timestamp": recent()}
    assert send("track", payload).status_code == 200
    source = source_key[0]
    write_key_revoke(key=source.keys.get())
    assert send("track", payload).status_code == 401


def test_endpoints_need_no_session_and_no_csrf_token(source_key):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        "/v1/track",
        json.dumps({"userId": "u1", "event": "Signed In"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(source_key[1]),
    )
    assert response.status_code == 200, response.content


def test_get_is_not_allowed(client, source_key):
    assert client.get("/v1/batch", HTTP_AUTHORIZATION=basic(source_key[1])).status_code == 405


# --- identify / track ----------------------------------------------------------------------


def test_track_for_an_unknown_user_creates_a_not_identified_customer_and_a_touchpoint(send):
    response = send(
        "track",
        {
            "userId": "u-17",
            "event": "Signed In",
            "messageId": "m-1",
            "timestamp": "2026-05-01T09:30:00+02:00",
            "properties": {"plan": "pro"},
        },
    )
    assert response.status_code == 200
    assert response.json()["touchpoints_created"] == 1
    customer = Customer.objects.get(external_id="u-17")
    assert customer.is_identified is False
    assert Engagement.objects.filter(customer=customer).exists()  # engine rows from the start
    touchpoint = Touchpoint.objects.get(customer=customer)
    assert touchpoint.type.key == "login"
    assert touchpoint.occurred_at == datetime(2026, 5, 1, 7, 30, tzinfo=UTC)
    assert (touchpoint.source, touchpoint.idempotency_key) == ("website", "m-1")
    assert touchpoint.properties == {"event": "Signed In", "properties": {"plan": "pro"}}
    assert PendingTouchpoint.objects.filter(touchpoint=touchpoint).exists()


def test_a_repeated_message_id_creates_nothing_new(send):
    payload = {"userId": "u1", "event": "Signed In", "messageId": "same", "timestamp": recent()}
    assert send("track", payload).json()["touchpoints_created"] == 1
    again = send("track", payload).json()
    assert (again["touchpoints_created"], again["duplicates"]) == (0, 1)
    assert Touchpoint.objects.count() == 1 and PendingTouchpoint.objects.count() == 1


def test_identify_upserts_traits_and_marks_the_customer_identified(send):
    send("track", {"userId": "u1", "event": "Signed In"})
    response = send(
        "identify",
        {
            "userId": "u1",
            "traits": {
                "email": "ada@example.com",
                "name": "Ada King",
                "company": "Analytical Engines",
                "plan": "Growth",
                "region": "Europe",
                "favourite_colour": "green",
            },
        },
    )
    assert response.status_code == 200
    customer = Customer.objects.get(external_id="u1")
    assert customer.is_identified is True
    assert (customer.email, customer.name, customer.company, customer.plan, customer.region) == (
        "ada@example.com",
        "Ada King",
        "Analytical Engines",
        "Growth",
        "Europe",
    )
    assert customer.traits == {"favourite_colour": "green"}  # the rest; columns not repeated
    send("identify", {"userId": "u1", "traits": {"plan": "Pro", "seats": 12}})
    customer.refresh_from_db()
    assert (customer.plan, customer.email) == ("Pro", "ada@example.com")
    assert customer.traits["seats"] == 12
    assert customer.traits["favourite_colour"] == "green"


def test_identify_for_a_new_user_takes_signup_date_from_created_at(send):
    send("identify", {"userId": "new", "traits": {"createdAt": "2025-02-03T10:00:00Z"}})
    customer = Customer.objects.get(external_id="new")
    assert (str(customer.signup_date), customer.is_identified) == ("2025-02-03", True)


def test_an_unmapped_event_is_stored_whole_not_dropped(send):
    response = send(
        "track",
        {"userId": "u1", "event": "Playlist Shared", "messageId": "p1", "properties": {"n": 3}},
    )
    assert response.json()["unmapped_stored"] == 1
    stored = UnmappedEvent.objects.get()
    assert (stored.event_name, stored.message_id, stored.properties) == (
        "Playlist Shared",
        "p1",
        {"n": 3},
    )
    assert not Touchpoint.objects.exists()
    again = send("track", {"userId": "u1", "event": "Playlist Shared", "messageId": "p1"}).json()
    assert again["duplicates"] == 1 and UnmappedEvent.objects.count() == 1


def test_page_becomes_a_page_view_and_screen_waits_for_a_mapping(send):
    send("page", {"anonymousId": "a1", "name": "Pricing", "properties": {"path": "/pricing"}})
    send("screen", {"anonymousId": "a1", "name": "Settings"})
    touchpoint = Touchpoint.objects.get()
    assert touchpoint.type.key == "page_view"
    assert touchpoint.properties["properties"] == {"path": "/pricing", "name": "Pricing"}
    assert UnmappedEvent.objects.get().event_name == "Screen Viewed"
    assert Customer.objects.get().external_id == "anon:a1"


def test_group_records_the_company(send):
    send("group", {"userId": "u1", "groupId": "g-9", "traits": {"name": "Acme", "employees": 40}})
    customer = Customer.objects.get(external_id="u1")
    assert customer.company == "Acme"
    assert customer.traits["group"] == {"id": "g-9", "name": "Acme", "employees": 40}


# --- identities ----------------------------------------------------------------------------


def test_anonymous_history_follows_the_user_on_first_message_with_both_ids(send):
    send("page", {"anonymousId": "a1", "messageId": "p1"})
    anonymous = Customer.objects.get(external_id="anon:a1")
    send("identify", {"userId": "u1", "anonymousId": "a1", "traits": {"email": "u@example.com"}})
    customer = Customer.objects.get(external_id="u1")
    assert customer.pk == anonymous.pk and customer.is_identified  # re-keyed, history kept
    send("page", {"anonymousId": "a1", "messageId": "p2"})  # later anonymous-only calls
    assert Customer.objects.count() == 1
    assert Touchpoint.objects.filter(customer=customer).count() == 2


def test_alias_re_keys_an_anonymous_profile_for_a_new_user(send):
    send("page", {"anonymousId": "a1"})
    send("alias", {"previousId": "a1", "userId": "u1"})
    customer = Customer.objects.get()
    assert customer.external_id == "u1"
    assert Touchpoint.objects.filter(customer=customer).count() == 1


def test_alias_merges_an_anonymous_profile_into_an_existing_user(send):
    send("track", {"userId": "u1", "event": "Signed In", "messageId": "t1"})
    send("identify", {"userId": "u1", "traits": {"email": "u1@example.com"}})
    send("page", {"anonymousId": "a1", "messageId": "p1"})
    send("identify", {"anonymousId": "a1", "traits": {"region": "APAC", "utm": "ads"}})
    user = Customer.objects.get(external_id="u1")
    response = send("alias", {"previousId": "a1", "userId": "u1"})
    assert response.status_code == 200
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["u1"]
    assert Touchpoint.objects.filter(customer=user).count() == 2
    # the moved touchpoint is queued again, now for the user
    assert set(PendingTouchpoint.objects.values_list("customer_id", flat=True)) == {user.pk}
    user.refresh_from_db()
    assert (user.email, user.region, user.traits["utm"]) == ("u1@example.com", "APAC", "ads")
    send("page", {"anonymousId": "a1", "messageId": "p2"})
    assert Touchpoint.objects.filter(customer=user).count() == 3


def test_alias_never_merges_two_identified_customers(send):
    send("identify", {"userId": "u1", "traits": {}})
    send("identify", {"userId": "u2", "traits": {}})
    response = send("alias", {"previousId": "u1", "userId": "u2"})
    assert response.status_code == 400
    assert "two identified customers" in response.json()["message"]
    assert Customer.objects.count() == 2
    assert RejectedMessage.objects.get().endpoint == "alias"


# --- time ----------------------------------------------------------------------------------


def test_a_naive_timestamp_is_refused_and_recorded(send):
    response = send("track", {"userId": "u1", "event": "x", "timestamp": "2026-05-01T10:00:00"})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_message"
    assert "has no time zone" in response.json()["message"]
    assert not Customer.objects.exists()
    assert "has no time zone" in RejectedMessage.objects.get().error


def test_a_future_event_is_refused(send, settings):
    settings.MAX_FUTURE_SKEW_SECONDS = 60
    future = iso(timezone.now() + timedelta(minutes=3))
    response = send("track", {"userId": "u1", "event": "x", "timestamp": future})
    assert response.status_code == 400 and "in the future" in response.json()["message"]
    settings.MAX_FUTURE_SKEW_SECONDS = 600
    assert send("track", {"userId": "u1", "event": "x", "timestamp": future}).status_code == 200


def test_sent_at_corrects_a_fast_client_clock(send):
    now = timezone.now()
    send(
        "track",
        {
            "userId": "u1",
            "event": "Signed In",
            "timestamp": iso(now + timedelta(hours=1) - timedelta(minutes=10)),
            "sentAt": iso(now + timedelta(hours=1)),  # the client's clock is an hour fast
        },
    )
    occurred = Touchpoint.objects.get().occurred_at
    assert abs(occurred - (now - timedelta(minutes=10))) < timedelta(seconds=5)


def test_a_backfilled_old_event_is_scored_at_its_own_time(send):
    now = timezone.now()
    old = now - timedelta(days=90)
    send("track", {"userId": "u1", "event": "Order Completed", "timestamp": iso(old)})
    engagement_refresh(now=now)
    state = ScoreState.objects.get(customer__external_id="u1")
    assert state.frequency == 1
    assert abs(state.last_engagement_at - old) < timedelta(seconds=1)
    # purchase weighs 10; 90 days at a 30-day half-life leaves 10 / 8 = 1.25 raw points.
    from customers.engagement import engine_config

    config = engine_config()
    raw = state.customer.score_state.decay_sum * 2 ** (
        -(now.timestamp() - config.epoch) / (30 * 86400)
    )
    assert raw == pytest.approx(1.25, rel=1e-3)


# --- sizes and bodies -----------------------------------------------------------------------


def test_a_single_call_over_32_kb_is_413(send):
    big = {"userId": "u1", "event": "x", "properties": {"blob": "x" * 33_000}}
    response = send("track", big)
    assert response.status_code == 413
    assert response.json() == {
        "success": False,
        "code": "payload_too_large",
        "message": "A track call may be at most 32 KB (uncompressed).",
    }
    assert send("track", big, compress=True).status_code == 413  # decompressed size counts
    assert not Customer.objects.exists()


def test_a_batch_over_500_kb_is_413_and_keeps_nothing(send):
    item = {"type": "track", "userId": "u1", "event": "x", "properties": {"b": "x" * 20_000}}
    response = send("batch", {"batch": [item] * 26}, compress=True)
    assert response.status_code == 413
    assert "larger than 500 KB" in response.json()["message"]
    assert not Customer.objects.exists() and not UnmappedEvent.objects.exists()


def test_a_declared_content_length_over_the_limit_is_413_before_reading(send):
    response = send("track", {}, headers={"CONTENT_LENGTH": str(10_000_000)})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        (b"{not json", {}, 400, "invalid_json"),
        (b"[]", {}, 400, "invalid_json"),
        (b"\x1f\x8b garbage", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "invalid_gzip"),
        (b"{}", {"HTTP_CONTENT_ENCODING": "compress"}, 415, "unsupported_encoding"),
    ],
)
def test_unreadable_bodies(send, raw, headers, status, code):
    response = send("batch", None, raw=raw, headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_gzip_bodies_are_accepted(send):
    response = send("track", {"userId": "u1", "event": "Signed In"}, compress=True)
    assert response.status_code == 200 and Touchpoint.objects.count() == 1


# --- batch ---------------------------------------------------------------------------------


def test_batch_keeps_good_messages_and_reports_bad_ones_by_index(send):
    batch = [
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}},
        {"type": "track", "userId": "u1", "event": "Signed In", "messageId": "ok-1"},
        {"type": "track", "userId": "u1", "event": "x", "timestamp": "2026-05-01T10:00:00"},
        {"type": "track", "event": "no one"},
        {"type": "track", "userId": "u2", "event": "x", "properties": {"b": "x" * 33_000}},
        {"type": "shout", "userId": "u1"},
        "not an object",
        {"type": "track", "userId": "u2", "event": "Order Completed", "messageId": "ok-2"},
        {"type": "track", "userId": "u2", "event": "Order Completed", "messageId": "ok-2"},
    ]
    response = send("batch", {"batch": batch, "sentAt": iso(timezone.now())})
    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert (body["accepted"], body["touchpoints_created"], body["duplicates"]) == (4, 2, 1)
    rejected = {r["index"]: r["error"] for r in body["rejected"]}
    assert sorted(rejected) == [2, 3, 4, 5, 6]
    assert "no time zone" in rejected[2]
    assert "userId or anonymousId is required" in rejected[3]
    assert "32 KB per message" in rejected[4]
    assert "type must be one of" in rejected[5]
    assert "must be a JSON object" in rejected[6]
    assert sorted(RejectedMessage.objects.values_list("index", flat=True)) == [2, 3, 4, 5, 6]
    assert Customer.objects.get(external_id="u1").email == "u1@example.com"
    assert Touchpoint.objects.count() == 2


def test_a_batch_with_only_bad_messages_is_400_and_writes_nothing_but_the_record(send):
    batch = [{"type": "track", "event": "x"}, {"type": "track", "userId": "u", "event": ""}]
    response = send("batch", {"batch": batch})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_batch"
    assert body["message"].startswith("All 2 messages were refused; message 0:")
    assert [r["index"] for r in body["rejected"]] == [0, 1]
    assert not Customer.objects.exists()
    assert RejectedMessage.objects.count() == 2


def test_batch_shape_errors(send):
    assert send("batch", {"events": []}).json()["code"] == "invalid_batch"
    naive = send("batch", {"batch": [], "sentAt": "2026-06-01T10:00:00"})
    assert naive.status_code == 400 and "no time zone" in naive.json()["message"]
    assert send("batch", {"batch": []}).status_code == 200


def test_a_resent_batch_creates_nothing_new(send):
    batch = [
        {"type": "track", "userId": f"u{i}", "event": "Signed In", "messageId": f"m{i}"}
        for i in range(50)
    ] + [{"type": "track", "userId": "u1", "event": "Mystery", "messageId": "q1"}]
    first = send("batch", {"batch": batch}, compress=True).json()
    assert (first["touchpoints_created"], first["unmapped_stored"]) == (50, 1)
    assert first["customers_created"] == 50
    second = send("batch", {"batch": batch}, compress=True).json()
    assert (second["touchpoints_created"], second["duplicates"], second["customers_created"]) == (
        0,
        51,
        0,
    )
    assert Touchpoint.objects.count() == 50 and Customer.objects.count() == 50


def test_import_is_an_alias_of_batch(send):
    response = send("import", {"batch": [{"type": "track", "userId": "u", "event": "Signed In"}]})
    assert response.status_code == 200 and Touchpoint.objects.count() == 1


def test_source_last_used_is_recorded(send, source_key):
    send("track", {"userId": "u", "event": "Signed In"})
    assert source_key[0].keys.get().last_used_at is not None


def test_payloads_of_refusals_are_capped(send):
    item = {"type": "track", "userId": "u", "event": "x", "properties": {"b": "y" * 40_000}}
    send("batch", {"batch": [item, {"type": "track", "userId": "u", "event": "ok"}]}, compress=True)
    payload = RejectedMessage.objects.get().payload
    assert len(payload["truncated"]) == 4096


def test_gzip_bomb_in_batch_is_413(send):
    bomb = gzip.compress(b'{"batch": [' + b" " * (20 * 1024 * 1024) + b"]}")
    response = send("batch", None, raw=bomb, headers={"HTTP_CONTENT_ENCODING": "gzip"})
    assert response.status_code == 413


def test_alias_to_a_new_user_id_re_keys_even_an_identified_customer(send):
    send("identify", {"userId": "old-id", "traits": {"email": "o@example.com"}})
    send("alias", {"previousId": "old-id", "userId": "new-id"})
    customer = Customer.objects.get()
    assert (customer.external_id, customer.email) == ("new-id", "o@example.com")
    send("track", {"userId": "old-id", "event": "Signed In"})  # the old id still finds it
    assert Customer.objects.count() == 1 and Touchpoint.objects.get().customer == customer


def test_sources_with_similar_names_get_distinct_slugs(db):
    from tracking.services import source_create

    assert [source_create(name=n)[0].slug for n in ("Web!", "Web?", "web ")] == [
        "web",
        "web-2",
        "web-3",
    ]

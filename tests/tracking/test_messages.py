"""The request and message rules, without a database."""

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from tracking.messages import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    MessageError,
    RequestError,
    body_json,
    body_read,
    message_id_derive,
    message_parse,
    occurred_at_correct,
    time_parse,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SKEW = timedelta(minutes=5)


def parse(raw, kind="track", index=None, batch_sent_at=None):
    return message_parse(
        raw, kind=kind, index=index, batch_sent_at=batch_sent_at, received_at=NOW, future_skew=SKEW
    )


def test_naive_timestamp_is_refused_with_a_message_saying_so():
    with pytest.raises(MessageError, match="no time zone; timestamps must be timezone-aware"):
        time_parse("timestamp", "2026-06-01T11:00:00")


def test_offsets_and_z_are_read_as_the_same_instant():
    assert time_parse("t", "2026-06-01T13:00:00+01:00") == time_parse("t", "2026-06-01T12:00:00Z")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", 1717243200, None])
def test_unreadable_times_are_refused(value):
    with pytest.raises(MessageError, match="ISO 8601"):
        time_parse("timestamp", value)


def test_skew_correction_moves_timestamp_by_received_minus_sent():
    # The client's clock runs 10 minutes fast: it stamped the event 11:55 client time and sent
    # it at 12:10 client time; we received it at 12:00 ours. 11:55 - 10 min = 11:45.
    timestamp = datetime(2026, 6, 1, 11, 55, tzinfo=UTC)
    sent_at = datetime(2026, 6, 1, 12, 10, tzinfo=UTC)
    assert occurred_at_correct(timestamp, sent_at, NOW) == datetime(2026, 6, 1, 11, 45, tzinfo=UTC)
    assert occurred_at_correct(timestamp, None, NOW) == timestamp  # no sentAt: as sent
    assert occurred_at_correct(None, sent_at, NOW) == NOW  # no timestamp: when received


def test_batch_sent_at_applies_and_a_message_sent_at_wins():
    raw = {"userId": "u1", "event": "Signed In", "timestamp": "2026-06-01T12:30:00Z"}
    batch_sent = datetime(2026, 6, 1, 12, 40, tzinfo=UTC)  # client 40 min fast
    assert parse(raw, batch_sent_at=batch_sent).occurred_at == datetime(
        2026, 6, 1, 11, 50, tzinfo=UTC
    )
    own = {**raw, "sentAt": "2026-06-01T12:30:00Z"}
    assert parse(own, batch_sent_at=batch_sent).occurred_at == NOW


def test_future_events_beyond_the_skew_are_refused_after_correction():
    ahead = {"userId": "u1", "event": "x", "timestamp": "2026-06-01T12:06:00Z"}
    with pytest.raises(MessageError, match="6 min in the future"):
        parse(ahead)
    assert parse({**ahead, "timestamp": "2026-06-01T12:04:59Z"}).occurred_at > NOW
    # A fast client clock is corrected, not refused.
    fast = {**ahead, "timestamp": "2026-06-01T14:00:00Z", "sentAt": "2026-06-01T14:00:01Z"}
    assert parse(fast).occurred_at == NOW - timedelta(seconds=1)


def test_a_correction_out_of_the_calendar_is_refused_not_crashed():
    raw = {"userId": "u", "event": "x", "timestamp": "0001-01-01T00:00:00Z"}
    with pytest.raises(MessageError, match="out of range"):
        parse({**raw, "sentAt": "2030-01-01T00:00:00Z"})


def test_old_events_are_accepted():
    old = parse({"userId": "u1", "event": "x", "timestamp": "2019-03-01T08:00:00Z"})
    assert old.occurred_at == datetime(2019, 3, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"event": "x"}, "userId or anonymousId is required"),
        ({"userId": "u", "event": ""}, "track needs an event name"),
        ({"userId": "u"}, "track needs an event name"),
        ({"userId": True, "event": "x"}, "userId must be a string, not a boolean"),
        ({"userId": "u", "event": "x", "properties": []}, "properties must be an object"),
        ({"userId": "u" * 256, "event": "x"}, "userId is longer than 255"),
        ({"userId": "u", "event": "x", "properties": {"revenue": "lots"}}, "is not a number"),
        ({"userId": "u", "event": "x", "context": "web"}, "context must be an object"),
    ],
)
def test_track_rules(raw, error):
    with pytest.raises(MessageError, match=error):
        parse(raw)


def test_numeric_ids_are_read_as_strings_and_revenue_is_the_value():
    message = parse({"userId": 42, "event": "Order Completed", "properties": {"revenue": 19.9}})
    assert (message.user_id, str(message.value)) == ("42", "19.90")


def test_batch_items_need_a_known_type_and_fit_in_32_kb():
    with pytest.raises(MessageError, match="type must be one of"):
        parse({"userId": "u", "type": "purchase"}, kind=None, index=0)
    blob = "x" * MAX_MESSAGE_BYTES
    big = {"type": "track", "userId": "u", "event": "x", "properties": {"p": blob}}
    with pytest.raises(MessageError, match="the limit is 32 KB per message"):
        parse(big, kind=None, index=3)


def test_identify_traits_are_validated():
    with pytest.raises(MessageError, match="not a valid email"):
        parse({"userId": "u", "traits": {"email": "nope"}}, kind="identify")
    with pytest.raises(MessageError, match="spendTier must be one of"):
        parse({"userId": "u", "traits": {"spendTier": "gold"}}, kind="identify")
    fields = parse(
        {
            "userId": "u",
            "traits": {"firstName": "Ada", "lastName": "King", "company": {"name": "Acme"}},
        },
        kind="identify",
    ).fields
    assert fields == {"name": "Ada King", "company": "Acme"}


def test_alias_and_group_need_their_ids():
    with pytest.raises(MessageError, match="alias needs both previousId and userId"):
        parse({"anonymousId": "a"}, kind="alias")
    with pytest.raises(MessageError, match="group needs a groupId"):
        parse({"userId": "u"}, kind="group")


def test_page_and_screen_become_their_mapping_names():
    page = parse({"anonymousId": "a", "name": "Pricing"}, kind="page")
    assert (page.event, page.properties) == ("Page Viewed", {"name": "Pricing"})
    assert parse({"userId": "u"}, kind="screen").event == "Screen Viewed"


def test_missing_message_id_is_derived_from_content_and_ignores_sent_at():
    a = {"userId": "u", "event": "x", "timestamp": "2026-06-01T10:00:00Z", "sentAt": "1"}
    b = {**a, "sentAt": "2"}
    assert message_id_derive(a) == message_id_derive(b) != message_id_derive({**a, "event": "y"})


def test_body_limits_count_decompressed_bytes_and_stop_a_gzip_bomb():
    bomb = gzip.compress(b"{" + b" " * (50 * 1024 * 1024) + b"}")  # 50 MB of spaces, ~50 KB
    assert len(bomb) < MAX_BATCH_BYTES
    with pytest.raises(RequestError) as caught:
        body_read(bomb, content_encoding="gzip", limit=MAX_BATCH_BYTES, endpoint="batch")
    assert caught.value.status == 413
    small = json.dumps({"batch": []}).encode()
    compressed = gzip.compress(small)
    assert body_read(compressed, content_encoding="gzip", limit=100, endpoint="batch") == small
    with pytest.raises(RequestError) as caught:
        body_read(b"x" * 2049, content_encoding="", limit=2048, endpoint="track")
    assert (caught.value.status, caught.value.message) == (
        413,
        "A track call may be at most 2 KB (uncompressed).",
    )


@pytest.mark.parametrize(
    ("raw", "encoding", "status", "code"),
    [
        (b"not gzip at all", "gzip", 400, "invalid_gzip"),
        (gzip.compress(b'{"a": 1}')[:-6], "gzip", 400, "invalid_gzip"),
        (b"{}", "br", 415, "unsupported_encoding"),
    ],
)
def test_bad_encodings(raw, encoding, status, code):
    with pytest.raises(RequestError) as caught:
        body_read(raw, content_encoding=encoding, limit=1000, endpoint="track")
    assert (caught.value.status, caught.value.code) == (status, code)


@pytest.mark.parametrize(
    ("body", "error"),
    [(b"{nope", "not valid JSON"), (b"[1, 2]", "must be a JSON object"), (b"\xff\xfe", "UTF-8")],
)
def test_bad_json(body, error):
    with pytest.raises(RequestError, match=error):
        body_json(body)

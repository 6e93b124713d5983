"""Touchpoint CSV imports through the real service, on the configured database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.engagement import engagement_refresh, engine_config
from customers.engine import decay
from customers.models import PendingTouchpoint, ScoreState, Touchpoint
from imports.models import ImportRun
from tests.imports.conftest import TOUCHPOINT_HEADER, error_rows

pytestmark = pytest.mark.django_db

GOOD = (
    TOUCHPOINT_HEADER
    + "e1,cust-a,login,2026-06-01T12:00:00Z,\n"
    + "e2,cust-b,purchase,2026-06-01T14:00:00+02:00,49.90\n"
    + "e3,cust-a,email_open,2026-06-02 08:30:15.250+0000,\n"
)


def test_good_file_creates_touchpoints_and_queues_each_for_the_engine(customers, run_import):
    run = run_import("touchpoints", GOOD)
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert (run.rows_total, run.rows_ok, run.rows_bad) == (3, 3, 0)
    assert (run.created_count, run.duplicate_count) == (3, 0)
    stored = {t.idempotency_key: t for t in Touchpoint.objects.select_related("type", "customer")}
    assert stored["e2"].customer.external_id == "cust-b"
    assert stored["e2"].type.key == "purchase"
    assert stored["e2"].occurred_at == datetime(2026, 6, 1, 12, tzinfo=UTC)  # +02:00 → UTC
    assert stored["e2"].value == Decimal("49.90")
    assert stored["e3"].occurred_at == datetime(2026, 6, 2, 8, 30, 15, 250_000, tzinfo=UTC)
    assert {t.source for t in stored.values()} == {"csv"}
    queued = set(PendingTouchpoint.objects.values_list("touchpoint_id", "customer_id"))
    assert queued == {(t.pk, t.customer_id) for t in stored.values()}
    assert "3 touchpoints created" in run.message


def test_reimporting_the_same_file_creates_nothing_new(customers, run_import):
    first = run_import("touchpoints", GOOD, source="crm")
    again = run_import("touchpoints", GOOD, source="crm")
    assert (first.created_count, first.duplicate_count) == (3, 0)
    assert again.status == ImportRun.Status.SUCCEEDED
    assert (again.created_count, again.duplicate_count) == (0, 3)
    assert Touchpoint.objects.count() == 3
    assert PendingTouchpoint.objects.count() == 3


def test_the_same_ids_under_another_source_are_new_touchpoints(customers, run_import):
    run_import("touchpoints", GOOD, source="crm")
    other = run_import("touchpoints", GOOD, source="shop")
    assert other.created_count == 3
    assert Touchpoint.objects.filter(source="shop").count() == 3


def test_an_id_repeated_inside_the_file_is_imported_once(customers, run_import):
    content = (
        TOUCHPOINT_HEADER
        + "dup,cust-a,login,2026-06-01T12:00:00Z,\n"
        + "dup,cust-a,login,2026-06-01T12:00:00Z,\n"
        + "solo,cust-b,login,2026-06-01T12:00:00Z,\n"
    )
    run = run_import("touchpoints", content)
    assert (run.created_count, run.duplicate_count) == (2, 1)
    assert Touchpoint.objects.filter(idempotency_key="dup").count() == 1


def test_without_an_id_column_every_row_is_a_new_touchpoint(customers, run_import):
    content = "customer_external_id,type,occurred_at\ncust-a,login,2026-06-01T12:00:00Z\n"
    run_import("touchpoints", content)
    run = run_import("touchpoints", content)
    assert run.created_count == 1
    assert Touchpoint.objects.filter(idempotency_key__isnull=True).count() == 2


def test_one_bad_row_imports_nothing_by_default(customers, run_import):
    content = GOOD + "e4,cust-c,login,2026-06-01T12:00:00,\n"
    run = run_import("touchpoints", content)
    assert run.status == ImportRun.Status.REJECTED
    assert (run.rows_total, run.rows_ok, run.rows_bad, run.created_count) == (4, 3, 1, 0)
    assert Touchpoint.objects.count() == 0 and PendingTouchpoint.objects.count() == 0
    assert run.message.startswith("Nothing imported: 1 of 4 rows have errors.")
    assert "row 5" in run.message and "Skip bad rows" in run.message
    assert error_rows(run) == [
        ["row", "column", "value", "message"],
        [
            "5",
            "occurred_at",
            "2026-06-01T12:00:00",
            "occurred_at has no time zone: a naive timestamp is ambiguous. Add Z for UTC or "
            "an offset such as +02:00, e.g. 2026-06-01T14:30:00Z",
        ],
    ]


def test_skip_mode_keeps_the_good_rows_and_lists_the_bad(customers, run_import):
    content = GOOD + "e4,nobody,login,2026-06-01T12:00:00Z,\ne5,cust-c,loginn,2026-06-01T12:00Z,\n"
    run = run_import("touchpoints", content, skip=True)
    assert run.status == ImportRun.Status.SUCCEEDED
    assert (run.rows_total, run.rows_ok, run.rows_bad, run.created_count) == (5, 3, 2, 3)
    assert set(Touchpoint.objects.values_list("idempotency_key", flat=True)) == {"e1", "e2", "e3"}
    rows = error_rows(run)[1:]
    assert [(r[0], r[1]) for r in rows] == [("5", "customer_external_id"), ("6", "type")]
    assert "matches no customer" in rows[0][3]
    assert "'loginn' is not a known touchpoint type; known: " in rows[1][3]
    assert "2 bad rows skipped" in run.message


@pytest.mark.parametrize(
    ("cells", "column", "message"),
    [
        ("x,cust-a,login,2026-06-01,", "occurred_at", "has no time zone"),
        ("x,cust-a,login,01/06/2026 12:00,", "occurred_at", "is not an ISO-8601 timestamp"),
        ("x,cust-a,login,2026-02-30T12:00:00Z,", "occurred_at", "is not a real date"),
        ("x,cust-a,login,2026-06-01T12:00:00+25:00,", "occurred_at", "ISO-8601"),
        ("x,cust-a,login,,", "occurred_at", "required"),
        ("x,cust-a,,2026-06-01T12:00:00Z,", "type", "required"),
        ("x,,login,2026-06-01T12:00:00Z,", "customer_external_id", "required"),
        ("x,cust-a,login,2026-06-01T12:00:00Z,12.345", "value", "2 after the decimal point"),
        ("x,cust-a,login,2026-06-01T12:00:00Z,€5", "value", "no thousands separators"),
        ("x,cust-a,login,2026-06-01T12:00:00Z,1,234", "", "row has 6 fields"),
        ("x" * 256 + ",cust-a,login,2026-06-01T12:00:00Z,", "id", "longer than 255"),
    ],
)
def test_each_bad_cell_is_reported_by_row_and_column(customers, run_import, cells, column, message):
    run = run_import("touchpoints", TOUCHPOINT_HEADER + cells + "\n")
    assert run.status == ImportRun.Status.REJECTED
    (error,) = run.errors_sample
    assert (error["row"], error["column"]) == (2, column)
    assert message in error["message"]


def test_future_events_beyond_the_skew_are_rejected_old_ones_accepted(customers, run_import):
    now = timezone.now()
    soon = (now + timedelta(minutes=2)).isoformat()
    later = (now + timedelta(minutes=30)).isoformat()
    old = "2019-03-01T09:00:00Z"
    content = TOUCHPOINT_HEADER + f"a,cust-a,login,{soon},\nb,cust-a,login,{later},\n"
    content += f"c,cust-a,login,{old},\n"
    run = run_import("touchpoints", content, skip=True)
    assert run.created_count == 2
    (error,) = run.errors_sample
    assert error["row"] == 3 and "is in the future: more than 5 minutes ahead" in error["message"]


def test_the_future_skew_is_the_shared_setting(customers, run_import, settings):
    settings.MAX_FUTURE_SKEW_SECONDS = 3600
    later = (timezone.now() + timedelta(minutes=30)).isoformat()
    run = run_import("touchpoints", TOUCHPOINT_HEADER + f"a,cust-a,login,{later},\n")
    assert run.status == ImportRun.Status.SUCCEEDED and run.created_count == 1


def test_backfilled_events_are_scored_as_of_when_they_happened(customers, run_import):
    """An event from 400 days ago adds almost nothing; one from yesterday almost its weight."""
    now = timezone.now().replace(microsecond=0)
    old, recent = now - timedelta(days=400), now - timedelta(days=1)
    content = TOUCHPOINT_HEADER + (
        f"old,cust-a,purchase,{old.isoformat()},\nnew,cust-a,login,{recent.isoformat()},\n"
    )
    assert run_import("touchpoints", content).created_count == 2
    assert engagement_refresh(now=now).touchpoints_applied == 2
    state = ScoreState.objects.get(customer=customers["cust-a"])
    config = engine_config()
    expected = sum(
        decay.decay_terms(w, t.timestamp(), epoch=config.epoch, half_life_days=30.0)
        for w, t in ((10.0, old), (3.0, recent))
    )
    assert state.customer.score_state.decay_sum == pytest.approx(float(expected), rel=1e-9)
    assert state.frequency == 2
    # (SQLite's julianday() arithmetic rounds to tens of microseconds)
    assert abs(state.first_engagement_at - old) < timedelta(milliseconds=1)
    assert abs(state.last_engagement_at - recent) < timedelta(milliseconds=1)


def test_properties_column_takes_a_json_object(customers, run_import):
    content = (
        "customer_external_id,type,occurred_at,properties\n"
        'cust-a,login,2026-06-01T12:00:00Z,"{""plan"": ""pro"", ""seats"": 3}"\n'
        "cust-a,login,2026-06-01T12:00:00Z,[1]\n"
        'cust-a,login,2026-06-01T12:00:00Z,"{""n"": NaN}"\n'
    )
    run = run_import("touchpoints", content, skip=True)
    assert Touchpoint.objects.get().properties == {"plan": "pro", "seats": 3}
    assert [e["row"] for e in run.errors_sample] == [3, 4]
    assert "must be a JSON object" in run.errors_sample[0]["message"]
    assert "not valid JSON" in run.errors_sample[1]["message"]


def test_header_problems_reject_the_file_up_front(customers, run_import):
    run = run_import("touchpoints", "customer_external_id,type,occured_at,extra\n")
    assert run.status == ImportRun.Status.REJECTED
    messages = [e["message"] for e in run.errors_sample]
    assert any("Missing required column(s): occurred_at." in m for m in messages)
    assert any("Unknown column 'occured_at'. Did you mean 'occurred_at'?" in m for m in messages)
    assert any("Unknown column 'extra'." in m for m in messages)
    assert {e["row"] for e in run.errors_sample} == {1}
    assert run.message.startswith("Nothing imported: Missing required column(s): occurred_at.")
    assert error_rows(run)[1][0] == "1"


def test_a_file_without_a_header_row_is_told_so(customers, run_import):
    run = run_import("touchpoints", "cust-a,login,2026-06-01T12:00:00Z\n", skip=True)
    assert run.status == ImportRun.Status.REJECTED
    assert "is not a header: no known column names" in run.message


def test_repeated_and_empty_header_names(customers, run_import):
    run = run_import("touchpoints", "customer_external_id,type,type,occurred_at,\n")
    messages = " ".join(e["message"] for e in run.errors_sample)
    assert "Column 'type' appears twice" in messages and "A column has no name" in messages


def test_an_empty_file_is_rejected(customers, run_import):
    run = run_import("touchpoints", "")
    assert run.status == ImportRun.Status.REJECTED
    assert "the file is empty" in run.message


def test_a_file_that_is_not_utf8_is_rejected_whole_with_the_line(customers, run_import):
    content = (GOOD + "e9,cust-c,login,2026-06-01T12:00:00Z,\n").encode()
    content = content.replace(b"cust-c", "cust-é".encode("latin-1"))
    run = run_import("touchpoints", content, skip=True)
    assert run.status == ImportRun.Status.REJECTED
    assert "not UTF-8 text (byte 0xE9 on line 5)" in run.message
    assert "CSV UTF-8" in run.message
    assert Touchpoint.objects.count() == 0


def test_bom_crlf_quoted_newlines_and_blank_lines(customers, run_import):
    content = (
        "\ufeffid,customer_external_id,type,occurred_at,value\r\n"
        "e1,cust-a,login,2026-06-01T12:00:00Z,\r\n"
        "\r\n"
        ",,,,\r\n"
        '"e,2\nsecond line",cust-b,login,2026-06-01T12:00:00Z,1.5\r\n'
        "e3,cust-c,login,2026-06-01T12:00,\r\n"
    )
    run = run_import("touchpoints", content, skip=True)
    assert run.rows_total == 3  # the blank line and the row of empty cells are not data
    assert run.created_count == 2
    assert Touchpoint.objects.filter(idempotency_key="e,2\nsecond line").exists()
    (error,) = run.errors_sample
    assert error["row"] == 6  # records counted with the header as row 1, blank ones too


def test_a_nul_character_is_a_row_error(customers, run_import):
    content = TOUCHPOINT_HEADER + "bad\x00id,cust-a,login,2026-06-01T12:00:00Z,\n"
    content += "ok,cust-a,login,2026-06-01T12:00:00Z,\n"
    run = run_import("touchpoints", content, skip=True)
    assert run.created_count == 1
    (error,) = run.errors_sample
    assert (error["row"], error["column"]) == (2, "id")
    assert "contains a NUL character" in error["message"]


def test_error_file_is_in_row_order_and_safe_to_open_in_a_spreadsheet(customers, run_import):
    content = (
        TOUCHPOINT_HEADER
        + 'a,=HYPERLINK("http://evil"),login,2026-06-01T12:00:00Z,\n'  # database check
        + "b,cust-a,@SUM(A1),2026-06-01T12:00:00Z,\n"  # cell check
        + "c,+cust,login,2026-06-01T12:00:00Z,\n"  # database check
    )
    run = run_import("touchpoints", content)
    rows = error_rows(run)[1:]
    assert [r[0] for r in rows] == ["2", "3", "4"]
    assert rows[0][2] == '\'=HYPERLINK("http://evil")'
    assert rows[1][2] == "'@SUM(A1)"
    assert rows[2][2] == "'+cust"
    assert run.errors_sample[0]["value"] == '=HYPERLINK("http://evil")'  # page shows it as is

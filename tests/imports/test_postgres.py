"""What only the PostgreSQL path does: COPY into staging, chunked INSERT … SELECT, temp tables."""

import csv
import io
from datetime import datetime

import pytest
from django.db import connection

from customers.engagement import engine_rows_ensure
from customers.models import PendingTouchpoint, Touchpoint
from imports import load_touchpoints
from imports.models import ImportRun
from imports.staging import Staging
from tests.factories import CustomerFactory
from tests.imports.conftest import TOUCHPOINT_HEADER

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def needs_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL path (COPY, temporary tables, INSERT … SELECT)")


def rows_to_csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


AWKWARD = [
    "tab\there",
    "back\\slash\\N",
    'quote"d, with comma',
    "new\nline\r\nand CR",
    "emoji 🎉 and ünïcödé",
    "\\.",
]


def test_copy_carries_awkward_text_exactly(run_import):
    customers = [CustomerFactory(external_id=f"c {text}") for text in AWKWARD]
    engine_rows_ensure([c.pk for c in customers])
    properties = '{"note": "a\\\\b\\ttab \\"q\\" \\u00e9", "n": [1, 2.5, null]}'
    content = rows_to_csv(
        [["id", "customer_external_id", "type", "occurred_at", "properties"]]
        + [
            [f"id {text}", f"c {text}", "login", "2026-06-01T12:00:00Z", properties]
            for text in AWKWARD
        ]
    )
    run = run_import("touchpoints", content)
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    stored = dict(Touchpoint.objects.values_list("idempotency_key", "customer__external_id"))
    assert stored == {f"id {text}": f"c {text}" for text in AWKWARD}
    assert {tuple(sorted(p)) for p in Touchpoint.objects.values_list("properties", flat=True)} == {
        ("n", "note")
    }
    assert Touchpoint.objects.first().properties == {"note": 'a\\b\ttab "q" é', "n": [1, 2.5, None]}


@pytest.mark.parametrize(
    "text",
    [
        "2026-06-01T12:00:00Z",
        "2026-06-01 12:00:00Z",
        "2026-06-01T14:00:00+02:00",
        "2026-06-01T14:00:00+0200",
        "2026-06-01T14:00+02",
        "2026-06-01T06:30:00.123456-05:30",
        "2026-06-01T23:59:59.5+14:00",
        "1999-12-31T23:59:59-12:00",
    ],
)
def test_every_accepted_timestamp_form_means_the_same_instant_in_postgres(
    customers, run_import, text
):
    content = TOUCHPOINT_HEADER + f"t,cust-a,login,{text},\n"
    assert run_import("touchpoints", content).created_count == 1
    assert Touchpoint.objects.get().occurred_at == datetime.fromisoformat(text)


def test_apply_runs_in_chunks_inside_one_transaction(customers, run_import, monkeypatch):
    monkeypatch.setattr(load_touchpoints, "APPLY_CHUNK", 2)
    lines = [f"e{i},cust-{'abc'[i % 3]},login,2026-06-01T12:{i:02d}:00Z," for i in range(7)]
    run = run_import("touchpoints", TOUCHPOINT_HEADER + "\n".join(lines) + "\n")
    assert run.created_count == 7
    pending = set(PendingTouchpoint.objects.values_list("touchpoint_id", "customer_id"))
    assert pending == set(Touchpoint.objects.values_list("id", "customer_id"))


def test_a_failure_in_a_later_chunk_rolls_back_the_earlier_ones(customers, run_import, monkeypatch):
    monkeypatch.setattr(load_touchpoints, "APPLY_CHUNK", 2)
    real_ranges = Staging.row_ranges

    def failing_ranges(self, size):
        for number, bounds in enumerate(real_ranges(self, size)):
            if number == 2:
                raise ConnectionError("database went away")
            yield bounds

    monkeypatch.setattr(Staging, "row_ranges", failing_ranges)
    lines = [f"e{i},cust-a,login,2026-06-01T12:{i:02d}:00Z," for i in range(7)]
    run = run_import("touchpoints", TOUCHPOINT_HEADER + "\n".join(lines) + "\n")
    assert run.status == ImportRun.Status.FAILED
    assert run.message == "Import failed, nothing was imported: database went away"
    assert not Touchpoint.objects.exists() and not PendingTouchpoint.objects.exists()


def test_an_id_repeated_in_a_later_chunk_falls_back_to_skipping_conflicts(
    customers, run_import, monkeypatch
):
    """A first import under a source inserts without ON CONFLICT; a repeated id (here two
    chunks apart) rolls that chunk back to its savepoint and redoes it skipping conflicts."""
    monkeypatch.setattr(load_touchpoints, "APPLY_CHUNK", 2)
    keys = ["a", "b", "c", "d", "a", "e", "f"]
    lines = [f"{k},cust-a,login,2026-06-01T12:{i:02d}:00Z," for i, k in enumerate(keys)]
    run = run_import("touchpoints", TOUCHPOINT_HEADER + "\n".join(lines) + "\n", source="crm")
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert (run.created_count, run.duplicate_count) == (6, 1)
    stored = set(Touchpoint.objects.values_list("idempotency_key", flat=True))
    assert stored == {"a", "b", "c", "d", "e", "f"}
    assert PendingTouchpoint.objects.count() == 6
    again = run_import("touchpoints", TOUCHPOINT_HEADER + "\n".join(lines) + "\n", source="crm")
    assert (again.created_count, again.duplicate_count) == (0, 7)


def test_one_bad_row_among_fifty_thousand_imports_nothing(customers, run_import):
    good = "".join(
        f"e{i},cust-{'abc'[i % 3]},login,2026-05-{1 + i % 28:02d}T12:00:00Z,\n"
        for i in range(49_999)
    )
    content = TOUCHPOINT_HEADER + good + "last,cust-a,login,2026-05-01T12:00:00,\n"
    run = run_import("touchpoints", content)
    assert (run.status, run.rows_total, run.rows_bad) == ("rejected", 50_000, 1)
    assert run.errors_sample[0]["row"] == 50_001
    assert not Touchpoint.objects.exists()
    skipped = run_import("touchpoints", content, skip=True)
    assert skipped.created_count == 49_999
    assert PendingTouchpoint.objects.count() == 49_999


def test_temporary_tables_are_gone_afterwards(customers, run_import):
    run = run_import("touchpoints", TOUCHPOINT_HEADER + "e,cust-a,login,2026-06-01T12:00:00Z,\n")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE %s", [f"import_%_{run.pk}%"]
        )
        assert cursor.fetchone()[0] == 0


def test_one_bad_row_in_a_million_imports_nothing(customers, run_import):
    """The issue's case at its size: the bad row (a naive time) half-way through a file of
    1,000,000 rows rejects the whole file in all-or-nothing mode, and names the row."""
    rows = [
        f"m{i},cust-{'abc'[i % 3]},login,2026-05-{1 + i % 28:02d}T12:00:00Z,\n"
        for i in range(1_000_000)
    ]
    rows[500_000] = "bad,cust-a,login,2026-05-01T12:00:00,\n"
    run = run_import("touchpoints", TOUCHPOINT_HEADER + "".join(rows))
    assert (run.status, run.rows_total, run.rows_bad) == ("rejected", 1_000_000, 1)
    assert run.errors_sample[0]["row"] == 500_002  # the header is row 1
    assert run.errors_sample[0]["column"] == "occurred_at"
    assert not Touchpoint.objects.exists()
    assert not PendingTouchpoint.objects.exists()

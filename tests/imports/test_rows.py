"""Row checkers: the fast path never accepts what the cell-by-cell checks reject."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from imports.formats import TOUCHPOINTS, header_check
from imports.rows import TouchpointRows

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TYPE_IDS = {"login": 1, "purchase": 2, "email_open": 3}

ids = st.one_of(
    st.text(max_size=8), st.just(""), st.just(" padded "), st.text(min_size=250, max_size=260)
)
types = st.one_of(st.sampled_from(["login", "purchase", " login", "LOGIN", "", "nope"]), st.text())
timestamps = st.one_of(
    st.sampled_from(
        [
            "2026-06-01T12:00:00Z",
            "2026-06-01 12:00+02:00",
            "2026-06-01T12:00:00.123456-0530",
            "2026-06-01T12:00:00+02",
            "2026-06-01T12:00:00",
            "2026-06-01",
            "2026-02-30T12:00:00Z",
            "2026-06-01T12:04:59Z",
            "2026-06-01T12:05:01Z",
            "1899-12-31T23:00:00Z",
            "2026-06-01T12:00:00z",
            "2026-06-01T25:00:00Z",
            "2026-06-01T12:00:00+15:00",
        ]
    ),
    st.datetimes(
        min_value=datetime(1890, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.timezones()
    ).map(lambda d: d.isoformat()),
    st.text(max_size=30),
)
values = st.one_of(
    st.sampled_from(["", "1", "-0.5", "12.345", "1e3", "1,000", "999999999999.99"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.text(max_size=6),
)
properties = st.one_of(st.just(""), st.sampled_from(['{"a": 1}', "[1]", "{", '{"n": NaN}']))


def checker(columns: list[str]) -> TouchpointRows:
    positions, problems = header_check(TOUCHPOINTS, columns)
    assert not problems
    return TouchpointRows(positions, type_ids=TYPE_IDS, now=NOW, skew=timedelta(minutes=5))


@settings(max_examples=400, deadline=None)
@given(ids, ids, types, timestamps, values, properties)
def test_fast_path_agrees_with_the_cell_checks(key, ext, type_key, occurred, value, props):
    rows = checker(["id", "customer_external_id", "type", "occurred_at", "value", "properties"])
    record = [key, ext, type_key, occurred, value, props]
    fast = rows.stage(7, list(record))
    slow, problems = rows.errors(7, list(record))
    if fast is not None:
        assert problems == [] and slow == fast
    assert (slow is None) == bool(problems)
    if slow is not None:
        assert datetime.fromisoformat(slow[3]) <= NOW + timedelta(minutes=5)


def test_columns_in_any_order_and_optional_ones_absent():
    rows = checker(["occurred_at", "type", "customer_external_id"])
    staged = rows.stage(2, ["2026-06-01T10:00:00Z", "login", "c-1"])
    assert staged == ("2", "c-1", "1", "2026-06-01T10:00:00Z", "", "", "")


def test_a_row_that_fails_fast_is_left_as_it_was():
    rows = checker(["customer_external_id", "type", "occurred_at"])
    record = ["c-1", "nope", "2026-06-01T10:00:00Z"]
    assert rows.stage(2, record) is None
    assert record == ["c-1", "nope", "2026-06-01T10:00:00Z"]
    assert [e.column for e in rows.errors(2, record)[1]] == ["type"]

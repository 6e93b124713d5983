"""Row checkers: one CSV record in, the tuple to stage (all text, '' = no value) out.

Each checker has a fast path (``stage``) that returns ``None`` whenever anything looks off,
and a slow path (``errors``) that runs the cell checkers of ``imports/formats.py`` on such a
row and says exactly what is wrong, column by column. The fast path only accepts rows whose
every cell the slow path accepts with the same staged text (tests/imports/test_rows.py
checks this on random rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter

from imports import formats
from imports.formats import CellError, FileFormat

ABSENT = -1  # position of a column the file does not have: reads the '' appended to each row


@dataclass(frozen=True)
class RowError:
    """One problem of one record: ``row`` counts records with the header as row 1."""

    row: int
    column: str
    value: str
    message: str


def _getter(fmt: FileFormat, positions: dict[str, int]) -> Callable[[list[str]], tuple]:
    return itemgetter(*[positions.get(name, ABSENT) for name in fmt.names])


class TouchpointRows:
    """Touchpoint records → (row, customer_external_id, type_id, occurred_at, value, id,
    properties)."""

    fmt = formats.TOUCHPOINTS
    staged_columns = (
        ("row_no", "bigint"),
        ("customer_external_id", "text"),
        ("type_id", "bigint"),
        ("occurred_at", "timestamptz"),
        ("value", "numeric(14,2)"),
        ("event_id", "text"),
        ("properties", "jsonb"),
    )

    def __init__(
        self,
        positions: dict[str, int],
        *,
        type_ids: dict[str, int],
        now: datetime,
        skew: timedelta,
    ) -> None:
        self.get = _getter(self.fmt, positions)
        self.width = len(positions)
        self.type_ids = {key: str(pk) for key, pk in type_ids.items()}
        self.skew = skew
        self.latest = now + skew

    def stage(self, row_no: int, row: list[str]) -> tuple[str, ...] | None:
        """The staged tuple, or None if the row needs the slow path (errors or JSON)."""
        if len(row) != self.width:
            return None
        row.append("")  # what absent columns read
        staged = self._fast(row_no, row)
        if staged is None:
            row.pop()
        return staged

    def _fast(self, row_no: int, row: list[str]) -> tuple[str, ...] | None:
        ext, type_key, occurred, key, value, properties = self.get(row)
        ext = ext.strip()
        type_id = self.type_ids.get(type_key.strip())
        key = key.strip()
        if (
            type_id is None
            or not ext
            or len(ext) > formats.TEXT_MAX
            or len(key) > formats.TEXT_MAX
            or properties
            or (value and not formats.DECIMAL_RE.fullmatch(value))
            or not formats.TIMESTAMP_RE.fullmatch(occurred)
        ):
            return None
        try:
            if datetime.fromisoformat(occurred) > self.latest:
                return None
        except ValueError:
            return None
        return (str(row_no), ext, type_id, occurred, value, key, "")

    def errors(self, row_no: int, row: list[str]) -> tuple[tuple[str, ...] | None, list[RowError]]:
        """Check every cell; the staged tuple if all are fine, else the row's errors."""
        width_error = _width_error(row_no, row, self.width)
        if width_error:
            return None, [width_error]
        ext, type_key, occurred, key, value, properties = self.get([*row, ""])
        staged: dict[str, str] = {}
        problems: list[RowError] = []

        def cell(column: str, text: str, check: Callable[[str], str]) -> None:
            try:
                staged[column] = check(text)
            except CellError as exc:
                problems.append(RowError(row_no, column, text, f"{column} {exc}"))

        cell("customer_external_id", ext, lambda t: formats.check_text(t.strip(), required=True))
        cell("type", type_key, self._type)
        cell(
            "occurred_at",
            occurred,
            lambda t: formats.check_timestamp(t, latest=self.latest, skew=self.skew),
        )
        cell("id", key, lambda t: formats.check_text(t.strip()))
        cell("value", value, formats.check_decimal)
        cell("properties", properties, formats.check_json_object)
        if problems:
            return None, problems
        return (
            str(row_no),
            staged["customer_external_id"],
            staged["type"],
            staged["occurred_at"],
            staged["value"],
            staged["id"],
            staged["properties"],
        ), []

    def _type(self, text: str) -> str:
        type_id = self.type_ids.get(text.strip())
        if type_id is None:
            if not text.strip():
                raise CellError("required: a touchpoint type key such as login")
            known = sorted(self.type_ids)
            shown = ", ".join(known[:25]) + (", …" if len(known) > 25 else "")
            raise CellError(f"{text.strip()!r} is not a known touchpoint type; known: {shown}")
        return type_id


class CustomerRows:
    """Customer records → (row, external_id, email, name, company, plan, region, spend_tier,
    lifetime_revenue, signup_date, renewal_date, owner_id, email_opt_out, traits)."""

    fmt = formats.CUSTOMERS
    staged_columns = (
        ("row_no", "bigint"),
        ("external_id", "text"),
        ("email", "text"),
        ("name", "text"),
        ("company", "text"),
        ("plan", "text"),
        ("region", "text"),
        ("spend_tier", "text"),
        ("lifetime_revenue", "numeric(14,2)"),
        ("signup_date", "date"),
        ("renewal_date", "date"),
        ("owner_id", "bigint"),
        ("email_opt_out", "boolean"),
        ("traits", "jsonb"),
    )

    def __init__(self, positions: dict[str, int], *, owner_ids: dict[str, int]) -> None:
        self.get = _getter(self.fmt, positions)
        self.width = len(positions)
        self.owner_ids = {name.lower(): str(pk) for name, pk in owner_ids.items()}
        tiers = tuple(formats.SpendTier.values)
        self.checks: list[Callable[[str], str]] = [
            lambda t: formats.check_text(t.strip(), required=True),
            formats.check_email,
            lambda t: formats.check_text(t, max_length=200),
            lambda t: formats.check_text(t, max_length=200),
            lambda t: formats.check_text(t, max_length=100),
            lambda t: formats.check_text(t, max_length=64),
            lambda t: formats.check_choice(t.strip().lower(), tiers),
            formats.check_decimal,
            formats.check_date,
            formats.check_date,
            self._owner,
            formats.check_bool,
            formats.check_json_object,
        ]

    def stage(self, row_no: int, row: list[str]) -> tuple[str, ...] | None:
        return self.errors(row_no, row)[0]

    def errors(self, row_no: int, row: list[str]) -> tuple[tuple[str, ...] | None, list[RowError]]:
        width_error = _width_error(row_no, row, self.width)
        if width_error:
            return None, [width_error]
        cells = self.get([*row, ""])
        staged = [str(row_no)]
        problems: list[RowError] = []
        for name, text, check in zip(self.fmt.names, cells, self.checks, strict=True):
            try:
                staged.append(check(text))
            except CellError as exc:
                problems.append(RowError(row_no, name, text, f"{name} {exc}"))
        if problems:
            return None, problems
        return tuple(staged), []

    def _owner(self, text: str) -> str:
        name = text.strip().lower()
        if not name:
            return ""
        owner_id = self.owner_ids.get(name)
        if owner_id is None:
            raise CellError(f"{text.strip()!r} is not the username of an active staff user")
        return owner_id


def _width_error(row_no: int, row: list[str], width: int) -> RowError | None:
    if len(row) == width:
        return None
    return RowError(
        row_no,
        "",
        ",".join(row)[:200],
        f"row has {len(row)} fields but the header has {width}: check for an unquoted comma "
        f"or a missing field",
    )


def future_skew() -> timedelta:
    """The allowed clock skew: one setting for every ingest path."""
    from customers.timestamps import max_future_skew

    return max_future_skew()

"""The CSV formats the importer reads: their columns, the header check, and cell checks.

Cell checkers are pure: they take the cell's text and return the value to stage as text
('' for "no value") or raise ``CellError`` with a message a person can act on. The row
checkers (``imports/rows.py``) call them; the fast path there must accept nothing these
reject.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from customers.models import SpendTier


class CellError(ValueError):
    """A cell that cannot be imported; the message says why and what would be accepted."""


@dataclass(frozen=True)
class Column:
    name: str
    required: bool
    meaning: str
    example: str


@dataclass(frozen=True)
class FileFormat:
    kind: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def optional(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if not c.required)


TOUCHPOINTS = FileFormat(
    "touchpoints",
    (
        Column("customer_external_id", True, "the customer's external id (must exist)", "acme-42"),
        Column("type", True, "touchpoint type key, e.g. login, email_open, purchase", "purchase"),
        Column(
            "occurred_at",
            True,
            "when it happened: ISO-8601 with a UTC offset (Z or ±HH:MM)",
            "2026-06-01T14:30:00Z",
        ),
        Column(
            "id",
            False,
            "the sender's event id: with it, importing the file again creates nothing new",
            "evt-000123",
        ),
        Column("value", False, "revenue, a number with up to 2 decimals", "49.90"),
        Column("properties", False, "a JSON object", '{"plan": "pro"}'),
    ),
)

CUSTOMERS = FileFormat(
    "customers",
    (
        Column("external_id", True, "your id for the customer: the upsert key", "acme-42"),
        Column("email", False, "email address", "ada@acme.example"),
        Column("name", False, "person or account name", "Ada Lovelace"),
        Column("company", False, "company", "Acme Ltd"),
        Column("plan", False, "plan / product", "Pro"),
        Column("region", False, "region", "Europe"),
        Column("spend_tier", False, "one of " + ", ".join(SpendTier.values), "mid"),
        Column("lifetime_revenue", False, "a number with up to 2 decimals", "12500.00"),
        Column("signup_date", False, "YYYY-MM-DD; required for a new customer", "2025-03-14"),
        Column("renewal_date", False, "YYYY-MM-DD", "2026-03-14"),
        Column("owner", False, "username of the staff user who owns the account", "cleo"),
        Column("email_opt_out", False, "true/false (also yes/no, 1/0)", "false"),
        Column(
            "traits", False, "a JSON object, merged into the customer's traits", '{"seats": 12}'
        ),
    ),
)

FORMATS = {f.kind: f for f in (TOUCHPOINTS, CUSTOMERS)}


def example_csv(fmt: FileFormat) -> str:
    """A file to start from: the header and one example row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(fmt.names)
    writer.writerow([c.example for c in fmt.columns])
    return buffer.getvalue()


# --- header ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeaderProblem:
    column: str
    message: str


def header_check(fmt: FileFormat, header: list[str]) -> tuple[dict[str, int], list[HeaderProblem]]:
    """Map column names to positions, or say what is wrong with the header row.

    Names are compared without surrounding spaces and case. Problems: no header at all,
    duplicate names, missing required columns, unknown columns (with a "did you mean").
    """
    names = [h.strip().lower() for h in header]
    expected = (
        f"Expected columns: {', '.join(fmt.required)} (required) and "
        f"{', '.join(fmt.optional)} (optional)."
    )
    if not any(names):
        return {}, [HeaderProblem("", f"The file has no header row. {expected}")]
    problems: list[HeaderProblem] = []
    positions: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in positions:
            problems.append(HeaderProblem(name, f"Column {name!r} appears twice in the header."))
        positions.setdefault(name, i)
    known = set(fmt.names)
    if not known & set(names):
        first = ", ".join(repr(h) for h in header[:4])
        return {}, [
            HeaderProblem(
                "",
                f"The first row ({first}) is not a header: no known column names. "
                f"Add a header row. {expected}",
            )
        ]
    missing = [n for n in fmt.required if n not in positions]
    if missing:
        problems.append(
            HeaderProblem(
                ", ".join(missing),
                f"Missing required column(s): {', '.join(missing)}. {expected}",
            )
        )
    for name in names:
        if name and name not in known:
            close = difflib.get_close_matches(name, fmt.names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(HeaderProblem(name, f"Unknown column {name!r}.{hint} {expected}"))
        elif not name:
            problems.append(HeaderProblem("", f"A column has no name. {expected}"))
    return positions, problems


# --- cells -------------------------------------------------------------------------------

# ISO-8601 with a mandatory UTC offset, in the forms both Python and PostgreSQL read the
# same way. Years 1900–2999; offsets up to ±14:59 (the real world spans −12:00 to +14:00).
TIMESTAMP_RE = re.compile(
    r"(?:19|2\d)\d\d-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?"
    r"(?:Z|[+-](?:0\d|1[0-4])(?::?[0-5]\d)?)"
)
_NAIVE_RE = re.compile(r"\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?")
DECIMAL_RE = re.compile(r"-?\d{1,12}(?:\.\d{1,2})?")
DATE_RE = re.compile(r"\d{4}-\d\d-\d\d")
TEXT_MAX = 255


def check_timestamp(text: str, *, latest: datetime, skew: timedelta) -> str:
    """A timezone-aware ISO-8601 timestamp no later than ``latest`` (the import's start plus
    the allowed clock ``skew``). Old (backfilled) times are fine: the engine decays them."""
    if not text:
        raise CellError("required: when it happened, e.g. 2026-06-01T14:30:00Z")
    if not TIMESTAMP_RE.fullmatch(text):
        if _NAIVE_RE.fullmatch(text):
            raise CellError(
                "has no time zone: a naive timestamp is ambiguous. Add Z for UTC or an "
                "offset such as +02:00, e.g. 2026-06-01T14:30:00Z"
            )
        raise CellError(
            "is not an ISO-8601 timestamp with a UTC offset, e.g. 2026-06-01T14:30:00Z or "
            "2026-06-01 16:30:00+02:00 (years 1900–2999)"
        )
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CellError(f"is not a real date and time: {exc}") from None
    if moment > latest:
        raise CellError(
            f"is in the future: more than {_duration(skew)} ahead of the import's start "
            f"is rejected (the latest accepted is {latest:%Y-%m-%dT%H:%M:%SZ})"
        )
    return text


def _duration(skew: timedelta) -> str:
    seconds = int(skew.total_seconds())
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def check_decimal(text: str) -> str:
    if text and not DECIMAL_RE.fullmatch(text):
        raise CellError(
            "is not a number with at most 12 digits before and 2 after the decimal point "
            "(write 1234.50, no thousands separators or currency signs)"
        )
    return text


def check_date(text: str) -> str:
    if not text:
        return ""
    if not DATE_RE.fullmatch(text):
        raise CellError("is not a date in the form YYYY-MM-DD, e.g. 2025-03-14")
    try:
        date.fromisoformat(text)
    except ValueError as exc:
        raise CellError(f"is not a real date: {exc}") from None
    return text


def check_text(text: str, *, required: bool = False, max_length: int = TEXT_MAX) -> str:
    if required and not text:
        raise CellError("required")
    if len(text) > max_length:
        raise CellError(f"is longer than {max_length} characters ({len(text)})")
    return text


_email = EmailValidator()


def check_email(text: str) -> str:
    if not text:
        return ""
    check_text(text, max_length=254)
    try:
        _email(text)
    except ValidationError:
        raise CellError("is not a valid email address") from None
    return text


def check_choice(text: str, choices: tuple[str, ...]) -> str:
    if text and text not in choices:
        raise CellError(f"must be one of {', '.join(choices)}")
    return text


_TRUE = {"true", "yes", "1", "y", "t"}
_FALSE = {"false", "no", "0", "n", "f"}


def check_bool(text: str) -> str:
    lowered = text.strip().lower()
    if not lowered:
        return ""
    if lowered in _TRUE:
        return "t"
    if lowered in _FALSE:
        return "f"
    raise CellError("must be true or false (yes/no and 1/0 work too)")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def check_json_object(text: str) -> str:
    """A JSON object, returned re-serialized (so PostgreSQL's jsonb accepts exactly what
    Python accepted: no NaN/Infinity, no NUL, no lone surrogates)."""
    if not text:
        return ""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
        if not isinstance(value, dict):
            raise CellError('must be a JSON object, e.g. {"plan": "pro"}')
        normalized = json.dumps(value, ensure_ascii=False, allow_nan=False)
        normalized.encode("utf-8")
    except CellError:
        raise
    except (ValueError, RecursionError, UnicodeEncodeError) as exc:
        raise CellError(f'is not valid JSON ({exc}); write e.g. {{"plan": "pro"}}') from None
    if _has_nul(value):
        raise CellError("contains a NUL character (\\u0000), which cannot be stored")
    return normalized


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False

"""Streaming CSV export of any customer queryset, with engagement columns.

``customers_export_response(queryset)`` is the reusable part: a screen passes the customers it
shows (a list, a segment's members, a filter) and gets a ``StreamingHttpResponse`` that reads
them from the database in chunks while it writes, so memory stays flat for a million rows.

Spreadsheet formula injection: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return would be run as a formula by Excel, LibreOffice or Google Sheets when the file
is opened. Every text cell that comes from data (names, emails, traits a customer typed) and
starts with one of those is written with a leading apostrophe (``'=HYPERLINK(…)``), which
spreadsheets read as "this is text" and do not display. Numbers and dates we format
ourselves are written as they are (``-3.5`` stays a number).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from customers.engagement import engine_config, score_expression
from customers.models import Customer, SpendTier, Stage

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2_000  # rows per database fetch (server-side cursor on PostgreSQL)
ROWS_PER_WRITE = 500  # rows joined into one chunk of the HTTP response
MAX_IDS = 10_000

# (CSV header, queryset field or computed name)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("external_id", "external_id"),
    ("name", "name"),
    ("email", "email"),
    ("company", "company"),
    ("plan", "plan"),
    ("region", "region"),
    ("spend_tier", "spend_tier"),
    ("lifetime_revenue", "lifetime_revenue"),
    ("signup_date", "signup_date"),
    ("renewal_date", "renewal_date"),
    ("owner", "owner__username"),
    ("email_opt_out", "email_opt_out"),
    ("stage", "engagement__stage"),
    ("stage_since", "engagement__stage_since"),
    ("score", "export_score"),
    ("p_still_engaged", "score_state__p_alive"),
    ("last_engagement_at", "score_state__last_engagement_at"),
    ("days_since_last_engagement", "score_state__last_engagement_at"),
    ("engagement_actions", "score_state__frequency"),
    ("typical_gap_days", "score_state__expected_gap_days"),
    ("trend_30d", "engagement__trend_30d"),
)
HEADER = [name for name, _ in COLUMNS]


def csv_cell(value: object) -> str:
    """One cell's text, neutralized against formula injection when it is text from data."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date | Decimal | int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return csv_cell(str(value))


def customers_export_rows(
    queryset: QuerySet[Customer], *, now: datetime | None = None
) -> Iterator[list[str]]:
    """The header, then one row per customer, read in chunks (``.iterator``)."""
    now = now or timezone.now()
    config = engine_config()
    fields = [field for _, field in COLUMNS]
    rows = queryset.annotate(export_score=score_expression(now, config)).values_list(
        *dict.fromkeys(fields)
    )
    positions = {field: i for i, field in enumerate(dict.fromkeys(fields))}
    yield HEADER
    for values in rows.iterator(chunk_size=CHUNK_ROWS):
        out = []
        for header, field in COLUMNS:
            value = values[positions[field]]
            if header == "days_since_last_engagement":
                value = None if value is None else round((now - value).total_seconds() / 86400, 1)
            elif field == "export_score" and value is not None:
                value = round(value, 1)
            out.append(csv_cell(value))
        yield out


class _Line:
    """A file-like sink for csv.writer that hands back what it was given."""

    def write(self, text: str) -> str:
        return text


def customers_csv_chunks(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Line())
    chunk: list[str] = []
    for row in rows:
        chunk.append(writer.writerow(row))
        if len(chunk) >= ROWS_PER_WRITE:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def customers_export_response(
    queryset: QuerySet[Customer], *, filename: str | None = None
) -> StreamingHttpResponse:
    """A streamed CSV download of ``queryset`` with engagement columns."""
    now = timezone.now()
    filename = filename or f"customers-{now:%Y%m%d-%H%M}.csv"
    response = StreamingHttpResponse(
        customers_csv_chunks(customers_export_rows(queryset, now=now)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class ExportFilterError(ValueError):
    """A query parameter of the export that cannot be applied; the message says why."""


EXTRA_PARAMS = ("ids",)


def customers_for_export(params, *, user) -> QuerySet[Customer]:
    """Customers selected by query parameters: every filter of the customer screens
    (``CustomerFilter``: what the list's and a segment's "Export CSV" links carry), plus
    ``ids`` (comma-separated) and ``owner`` as a username or ``me``. None: everyone.
    Raises ``ExportFilterError`` with a message for an unknown or malformed parameter."""
    from customers.filters import CustomerFilter

    unknown = sorted(set(params) - set(EXTRA_PARAMS) - set(CustomerFilter.base_filters))
    if unknown:
        raise ExportFilterError(
            f"Unknown filter(s): {', '.join(unknown)}. Use ids or the customer list's filters "
            f"({', '.join(CustomerFilter.base_filters)})."
        )
    queryset = Customer.objects.order_by("id")
    if raw_ids := params.get("ids", "").strip():
        try:
            ids = sorted({int(part) for part in raw_ids.split(",") if part.strip()})
        except ValueError:
            raise ExportFilterError(
                "ids must be comma-separated customer ids, e.g. 12,40,41."
            ) from None
        if len(ids) > MAX_IDS:
            raise ExportFilterError(f"At most {MAX_IDS:,} ids; export a filter instead.")
        queryset = queryset.filter(pk__in=ids)
    for name, choices in (("stage", Stage.values), ("spend_tier", SpendTier.values)):
        for value in params.getlist(name) if hasattr(params, "getlist") else [params[name]]:
            if value and value not in choices:
                raise ExportFilterError(f"{name} must be one of {', '.join(choices)}.")
    data = params.copy()
    data.pop("ids", None)
    owner = params.get("owner", "").strip()
    if owner and not owner.isdigit():  # the screens send a user id; people type a username
        data.pop("owner")
        queryset = (
            queryset.filter(owner=user) if owner == "me" else queryset.filter(owner__username=owner)
        )
    filterset = CustomerFilter(data, queryset=queryset, now=timezone.now())
    if not filterset.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()
        )
        raise ExportFilterError(f"Invalid filter: {problems}")
    return filterset.qs.order_by("id")

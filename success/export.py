"""CSV export of the renewal-risk list.

Spreadsheet formula injection: a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return would run as a formula when the file is opened in a spreadsheet; such
cells get a leading apostrophe, which spreadsheets read as "text" and do not show. Numbers we
format ourselves are written as they are.

TODO(dedupe): the CSV branch adds ``customers/export.py`` with the same ``csv_cell``; once it
is in main, import it from there and delete the local one.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from customers.models import Customer
from success.selectors import renewal_risk_rows

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
BATCH = 500

HEADER = [
    "external_id",
    "name",
    "company",
    "email",
    "plan",
    "owner",
    "renewal_date",
    "stage",
    "score",
    "p_still_engaged",
    "trend_30d",
    "lifetime_revenue",
    "revenue_at_risk",
    "reason",
    "last_note",
]


def csv_cell(value: object) -> str:
    """One cell's text; text from data that a spreadsheet would run gets an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    return str(value)


class _Echo:
    def write(self, value: str) -> str:
        return value


def renewal_risk_csv_rows(
    accounts: QuerySet[Customer], *, now: datetime | None = None
) -> Iterator[list[str]]:
    """Header, then one row per account in list order; a fixed number of queries per
    ``BATCH`` accounts (keyset over the list's order is not needed: the list is bounded by
    the renewal window, and each batch is one LIMIT/OFFSET slice)."""
    now = now or timezone.now()
    yield HEADER
    offset = 0
    while True:
        page = renewal_risk_rows(accounts[offset : offset + BATCH], now=now)
        for c in page:
            e = c.engagement
            notes = list(c.notes.all())
            yield [
                csv_cell(v)
                for v in (
                    c.external_id,
                    c.name,
                    c.company,
                    c.email,
                    c.plan,
                    c.owner.username if c.owner else "",
                    c.renewal_date.isoformat(),
                    e.stage,
                    round(c.score, 1),
                    c.score_state.p_alive,
                    e.trend_30d,
                    c.lifetime_revenue,
                    round(c.revenue_at_risk, 2),
                    c.reason,
                    notes[0].body if notes else "",
                )
            ]
        if len(page) < BATCH:
            return
        offset += BATCH


def renewal_risk_csv_response(accounts: QuerySet[Customer], *, filename: str):
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in renewal_risk_csv_rows(accounts)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

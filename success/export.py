"""CSV export of the renewal-risk list.

Spreadsheet formula injection: cells are written with ``customers.export.csv_cell``, the
one neutralizer every export shares — a text cell starting with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return gets a leading apostrophe, which spreadsheets read as "text" and do
not show. Numbers we format ourselves are written as they are.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from customers.export import csv_cell
from customers.models import Customer
from success.selectors import renewal_risk_rows

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

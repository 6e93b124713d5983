"""CSV export: formula injection neutralized, streamed, engagement columns, roles."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from customers.engagement import engine_config, engine_rows_ensure
from customers.export import HEADER, csv_cell, customers_export_response
from customers.models import Customer, Engagement, ScoreState
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (
            '=HYPERLINK("http://evil.example","click")',
            '\'=HYPERLINK("http://evil.example","click")',
        ),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Ada Lovelace", "Ada Lovelace"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-3.25, "-3.25"),  # numbers we format are not text from data: left as numbers
        (Decimal("-10.50"), "-10.50"),
        (True, "true"),
        (datetime(2026, 6, 1, 12, tzinfo=UTC), "2026-06-01T12:00:00Z"),
    ],
)
def test_cells_that_a_spreadsheet_would_run_are_neutralized(value, written):
    assert csv_cell(value) == written


def read(response) -> list[list[str]]:
    assert response.streaming
    body = b"".join(
        part if isinstance(part, bytes) else part.encode() for part in response.streaming_content
    )
    return list(csv.reader(io.StringIO(body.decode("utf-8"))))


def test_export_streams_every_customer_with_engagement_columns():
    customers = [CustomerFactory(lifetime_revenue=Decimal("10.00")) for _ in range(25)]
    engine_rows_ensure([c.pk for c in customers])
    now = timezone.now()
    config = engine_config()
    first = customers[0]
    ScoreState.objects.filter(customer=first).update(
        decay_sum=2.0 ** ((now.timestamp() - config.epoch) / (config.half_life_days * 86400)) * 10
    )
    Engagement.objects.filter(customer=first).update(stage="engaged", trend_30d=-5.5)
    ScoreState.objects.filter(customer=first).update(
        p_alive=0.8123, last_engagement_at=now - timedelta(days=3), frequency=4
    )
    evil = CustomerFactory(name="=cmd|' /C calc'!A0", company="@corp", email="x@y.example")
    engine_rows_ensure([evil.pk])
    rows = read(customers_export_response(Customer.objects.order_by("id")))
    assert rows[0] == HEADER
    assert len(rows) == 1 + 26
    by_id = {row[0]: dict(zip(HEADER, row, strict=True)) for row in rows[1:]}
    engaged = by_id[first.external_id]
    assert engaged["stage"] == "engaged"
    assert float(engaged["score"]) == pytest.approx(50.0, abs=0.1)  # raw = half point → 50
    assert engaged["p_still_engaged"] == "0.8123"
    assert float(engaged["days_since_last_engagement"]) == pytest.approx(3.0, abs=0.1)
    assert engaged["engagement_actions"] == "4" and engaged["trend_30d"] == "-5.5"
    assert engaged["lifetime_revenue"] == "10.00"
    assert by_id[evil.external_id]["name"] == "'=cmd|' /C calc'!A0"
    assert by_id[evil.external_id]["company"] == "'@corp"
    assert by_id[evil.external_id]["score"] == "0"


def test_export_of_a_filtered_queryset_keeps_its_rows_only():
    made = [CustomerFactory(region="Europe" if i % 2 else "APAC") for i in range(6)]
    engine_rows_ensure([c.pk for c in made])
    rows = read(customers_export_response(Customer.objects.filter(region="Europe")))
    assert len(rows) == 1 + 3


def test_export_starts_before_every_row_is_read(monkeypatch):
    from customers import export

    monkeypatch.setattr(export, "CHUNK_ROWS", 10)
    made = [CustomerFactory() for _ in range(35)]
    engine_rows_ensure([c.pk for c in made])
    response = customers_export_response(Customer.objects.all())
    chunks = iter(response.streaming_content)
    first = next(chunks)  # the response starts before every row is read
    assert first.decode().startswith("external_id,")
    assert len(read_rest(first, chunks)) == 36


def read_rest(first, chunks) -> list[list[str]]:
    body = first + b"".join(chunks)
    return list(csv.reader(io.StringIO(body.decode())))


@pytest.mark.parametrize(
    ("user_fixture", "status"),
    [("marketer", 200), ("cs_user", 200), ("admin_user", 200), ("no_role_user", 403)],
)
def test_export_view_roles(request, login, user_fixture, status):
    client = login(request.getfixturevalue(user_fixture))
    response = client.get(reverse("customers-export"))
    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"].startswith('attachment; filename="customers-')


def test_export_view_filters(login, marketer, cs_user):
    a = CustomerFactory(region="Europe", plan="Pro", owner=cs_user)
    b = CustomerFactory(region="Europe", plan="Free")
    c = CustomerFactory(region="APAC", plan="Pro")
    engine_rows_ensure([a.pk, b.pk, c.pk])
    Engagement.objects.filter(customer=b).update(stage="at_risk")

    def exported(client, query: str) -> set[str]:
        response = client.get(reverse("customers-export") + query)
        assert response.status_code == 200, response.content
        return {row[0] for row in read(response)[1:]}

    client = login(marketer)
    assert exported(client, f"?ids={a.pk},{c.pk}") == {a.external_id, c.external_id}
    assert exported(client, "?region=Europe&plan=Pro") == {a.external_id}
    assert exported(client, "?stage=at_risk") == {b.external_id}
    assert exported(client, "") == {a.external_id, b.external_id, c.external_id}
    assert exported(login(cs_user), "?owner=me") == {a.external_id}
    assert exported(client, f"?owner={cs_user.pk}") == {a.external_id}
    # Every filter of the customer list (its "Export CSV" link carries them), repeated too.
    everyone = {a.external_id, b.external_id, c.external_id}
    assert exported(client, "?stage=at_risk&stage=new") == everyone
    assert exported(client, "?region=Europe&score_max=100&q=") == {a.external_id, b.external_id}


def test_the_customer_list_export_link_exports_what_the_list_shows(login, marketer):
    """The list's Export CSV link and a segment's carry CustomerFilter parameters."""
    from segments.models import Segment

    keep = CustomerFactory(region="Europe", plan="Pro")
    CustomerFactory(region="APAC", plan="Pro")
    engine_rows_ensure([keep.pk])
    client = login(marketer)
    page = client.get(reverse("customer-list") + "?region=Europe&score_min=0")
    link = next(
        line for line in page.content.decode().splitlines() if "/customers/export.csv" in line
    )
    href = link.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert {row[0] for row in read(client.get(href))[1:]} == {keep.external_id}
    segment = Segment.objects.create(name="Europe", params={"region": ["Europe"]})
    detail = client.get(reverse("segment-detail", args=[segment.pk])).content.decode()
    href = detail.split('href="/customers/export.csv', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    response = client.get("/customers/export.csv" + href)
    assert {row[0] for row in read(response)[1:]} == {keep.external_id}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?ids=1,two", "ids must be comma-separated customer ids"),
        ("?stage=gone", "stage must be one of new, engaged"),
        ("?spend_tier=gold", "spend_tier must be one of"),
        ("?colour=red", "Unknown filter(s): colour."),
        ("?score_min=lots", "Invalid filter: score_min"),
    ],
)
def test_export_view_bad_filters_are_400_with_a_message(login, marketer, query, message):
    response = login(marketer).get(reverse("customers-export") + query)
    assert response.status_code == 400
    assert message in response.content.decode()

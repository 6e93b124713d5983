"""Every staff screen runs a fixed number of queries, whatever the data (no N+1).

Each screen is requested with a little data and again with three times as much (customers,
touchpoints, stage changes, notes, segments, job runs, and more history on the customer whose
page is opened); the query count must be the same both times and within the screen's bound.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.dashboard import dashboard_summary_refresh
from customers.engagement import engagement_refresh, touchpoint_add
from customers.models import Customer, Engagement, JobRun, ScoreState, StageChange, TouchpointType
from segments.models import Segment
from segments.services import segment_save
from success.risk import renewal_risk_refresh
from success.services import customer_note_add
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

# (url name, args maker, query string, bound)
SCREENS = [
    ("home", None, "", 10),
    ("customer-list", None, "", 10),
    ("customer-list", None, "stage=at_risk&region=Europe&score_max=90&channel=product", 10),
    ("customer-detail", "first_customer", "", 16),
    ("segment-list", None, "", 8),
    ("segment-new", None, "region=Europe", 10),
    ("segment-count", None, "stage=at_risk&region=Europe", 6),
    ("segment-detail", "first_segment", "", 12),
    ("segment-compare", None, "compare", 16),
    ("segment-launch", "first_segment", "", 8),
    ("renewal-risk", None, "", 12),
    ("renewal-risk", None, "mine=on&days=30", 12),
    ("engagement-settings", None, "", 10),
    ("jobs", None, "", 8),
    ("jobs-table", None, "", 8),
]


def _grow(n: int, owner, *, round_: int) -> None:
    """``n`` more customers with history, notes and stage moves, one more segment and job run,
    and more of everything on the first customer."""
    now = timezone.now()
    login = TouchpointType.objects.get(key="login")
    purchase = TouchpointType.objects.get(key="purchase")
    made = [
        CustomerFactory(
            region="Europe" if i % 2 else "APAC",
            renewal_date=timezone.localdate() + timedelta(days=5 + i),
            lifetime_revenue=Decimal(100 + i),
            owner=owner,
        )
        for i in range(n)
    ]
    first = Customer.objects.order_by("pk").first()
    for c in [*made, first]:
        for day in range(3):
            touchpoint_add(customer=c, type=login, occurred_at=now - timedelta(days=40 + day))
        touchpoint_add(customer=c, type=purchase, occurred_at=now - timedelta(days=45))
        customer_note_add(customer=c, author=owner, body=f"note {round_}", kind="cs_call")
        StageChange.objects.create(
            customer=c,
            from_stage="engaged",
            to_stage="at_risk",
            changed_at=now - timedelta(days=2),
            score=20,
        )
    engagement_refresh(now=now)
    Engagement.objects.filter(customer__in=made).update(stage="at_risk")
    ScoreState.objects.filter(customer__in=made).update(p_alive=0.4)
    JobRun.objects.create(
        kind="refresh", status="succeeded", started_at=now, finished_at=now, chunks_total=1
    )
    segment_save(name=f"Europe {round_}", description="", params={"region": "Europe"}, user=owner)
    dashboard_summary_refresh()  # the beat task's part
    renewal_risk_refresh()


def _url(name: str, args_maker: str | None, query: str) -> str:
    segments = list(Segment.objects.order_by("pk").values_list("pk", flat=True))
    args = {
        None: [],
        "first_customer": [Customer.objects.order_by("pk").values_list("pk", flat=True)[0]],
        "first_segment": [segments[0]],
    }[args_maker]
    if query == "compare":
        query = f"a={segments[0]}&b={segments[1]}"
    return reverse(name, args=args) + (f"?{query}" if query else "")


def _queries(client, url: str) -> int:
    client.get(url)  # warm per-process caches (content types, settings row)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured)


@pytest.mark.parametrize(("name", "args_maker", "query", "bound"), SCREENS)
def test_screen_queries_are_bounded_and_do_not_grow_with_data(
    login, admin_user, name, args_maker, query, bound
):
    client = login(admin_user)
    _grow(3, admin_user, round_=1)
    _grow(1, admin_user, round_=2)  # two segments for the compare page
    small = _queries(client, _url(name, args_maker, query))
    _grow(9, admin_user, round_=3)
    large = _queries(client, _url(name, args_maker, query))
    assert small == large <= bound, f"{name}?{query}: {small} then {large} queries"

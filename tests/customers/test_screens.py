"""Dashboard, customer list and customer page: roles, filters, paging, query counts."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.actions import TouchRow, action_effects
from customers.dashboard import (
    SUMMARIES_KEPT,
    dashboard_summary_compute,
    dashboard_summary_due,
    dashboard_summary_refresh,
)
from customers.engagement import engagement_refresh, engine_config, touchpoint_add
from customers.engine import decay, snapshots
from customers.listing import SORTS, BadCursor, keyset_page, result_count
from customers.models import (
    Customer,
    DashboardSummary,
    Engagement,
    JobRun,
    ScoreSnapshot,
    ScoreState,
    StageChange,
    TouchpointType,
)
from customers.profile import score_history
from customers.selectors import customers_with_state
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def active_customers():
    """A few customers with touchpoints and engine state, some of them in Europe."""
    login = TouchpointType.objects.get(key="login")
    now = timezone.now()
    made = []
    for i in range(6):
        customer = CustomerFactory(
            region="Europe" if i % 2 else "APAC", lifetime_revenue=Decimal(100 * i)
        )
        for day in range(i):
            touchpoint_add(customer=customer, type=login, occurred_at=now - timedelta(days=day))
        made.append(customer)
    engagement_refresh(now=now)
    return made


# --- roles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user_fixture", "dashboard", "customers", "segments"),
    [
        ("admin_user", 200, 200, 200),
        ("marketer", 200, 200, 200),
        ("cs_user", 302, 200, 403),
        ("no_role_user", 200, 403, 403),
    ],
)
def test_it_lets_each_role_see_its_screens(
    request, login, active_customers, user_fixture, dashboard, customers, segments
):
    client = login(request.getfixturevalue(user_fixture))
    assert client.get(reverse("home")).status_code == dashboard
    assert client.get(reverse("customer-list")).status_code == customers
    detail = reverse("customer-detail", args=[active_customers[0].pk])
    assert client.get(detail).status_code == customers
    assert client.get(reverse("segment-list")).status_code == segments
    assert client.get(reverse("segment-count")).status_code == segments


def test_forbidden_page_is_a_friendly_403(login, cs_user):
    response = login(cs_user).get(reverse("segment-list"))
    assert response.status_code == 403
    assert "not part of your role" in response.content.decode()


def test_nav_shows_only_allowed_items(login, cs_user, marketer):
    cs_page = login(cs_user).get(reverse("customer-list")).content.decode()
    assert ">Customers</a>" in cs_page
    assert ">Segments</a>" not in cs_page and ">Dashboard</a>" not in cs_page
    assert "Save as segment" not in cs_page
    marketing_page = login(marketer).get(reverse("customer-list")).content.decode()
    assert ">Segments</a>" in marketing_page and ">Dashboard</a>" in marketing_page
    assert "Save as segment" in marketing_page and ">Settings</a>" not in marketing_page


def test_user_without_role_is_told_to_ask_for_one(login, no_role_user):
    assert "no role yet" in login(no_role_user).get(reverse("home")).content.decode()


# --- dashboard ---------------------------------------------------------------------------


def test_dashboard_shows_stages_flows_and_disengaging_revenue(
    login, marketer, active_customers, django_assert_max_num_queries
):
    now = timezone.now()
    cooling = active_customers[3]
    cooling.engagement.stage = "cooling"
    cooling.engagement.stage_since = now - timedelta(days=2)
    cooling.engagement.save()
    StageChange.objects.create(
        customer=cooling, from_stage="engaged", to_stage="cooling", changed_at=now, score=40
    )
    dashboard_summary_refresh()  # the beat task's part
    client = login(marketer)
    with django_assert_max_num_queries(10):
        page = client.get(reverse("home")).content.decode()
    assert "Disengaging now" in page and cooling.name in page
    assert ">300<" in page  # revenue attached to the one disengaging customer
    assert "1 moves between stages" in page
    assert page.count('class="plotly-graph-div"') >= 2  # stage bar and flow Sankey


def _decay_sum_for(score: float, now: datetime) -> float:
    config = engine_config()
    low, _ = decay.score_bounds_to_decay_sum(
        score,
        None,
        now.timestamp(),
        epoch=config.epoch,
        half_life_days=config.half_life_days,
        half_point=config.half_point,
    )
    return low


def test_summary_histogram_counts_live_scores():
    now = timezone.now()
    for score in (12.5, 13.0, 97.0):
        c = CustomerFactory()
        ScoreState.objects.filter(customer=c).update(decay_sum=_decay_sum_for(score, now))
    summary = dashboard_summary_compute(now=now)
    assert sum(summary.score_counts) == 3
    assert summary.score_counts[2] == 2 and summary.score_counts[19] == 1  # 10–15, 95–100


def test_dashboard_reads_summary_rows_and_aggregates_nothing(
    login, marketer, active_customers, django_assert_max_num_queries
):
    dashboard_summary_refresh()
    moved = active_customers[0]
    Engagement.objects.filter(customer=moved).update(stage="lapsed")
    client = login(marketer)
    client.get(reverse("home"))  # warm caches (content types, settings row)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("home")).content.decode()
    assert len(queries) <= 8
    sql = " ".join(q["sql"] for q in queries).upper()
    assert "GROUP BY" not in sql and "COUNT(" not in sql and "SUM(" not in sql
    assert "figures as of" in page
    assert ">0</div>" in page.split("Lapsed", 1)[1][:200]  # the summary's count, not live

    dashboard_summary_refresh()
    page = client.get(reverse("home")).content.decode()
    assert ">1</div>" in page.split("Lapsed", 1)[1][:200]


def test_summary_is_due_when_missing_old_or_after_an_engine_job():
    now = timezone.now()
    assert dashboard_summary_due(now=now)
    dashboard_summary_refresh(now=now)
    assert not dashboard_summary_due(now=now + timedelta(minutes=1))
    assert dashboard_summary_due(now=now + timedelta(minutes=11))
    JobRun.objects.create(
        kind="refresh",
        status="succeeded",
        started_at=now,
        finished_at=now + timedelta(seconds=5),
        customers_processed=3,
    )
    assert dashboard_summary_due(now=now + timedelta(minutes=1))


def test_old_summaries_are_pruned():
    for _ in range(SUMMARIES_KEPT + 3):
        dashboard_summary_refresh()
    assert DashboardSummary.objects.count() == SUMMARIES_KEPT


# --- customer list -----------------------------------------------------------------------


def test_list_filters_through_the_view(login, marketer, active_customers):
    client = login(marketer)
    page = client.get(reverse("customer-list"), {"region": "Europe"}).content.decode()
    europe = [c for c in active_customers if c.region == "Europe"]
    apac = [c for c in active_customers if c.region == "APAC"]
    assert all(c.name in page for c in europe)
    assert not any(f">{c.name}<" in page for c in apac)
    assert "<strong>3</strong> customers" in page
    assert "/customers/export.csv?region=Europe" in page
    assert reverse("segment-new") + "?region=Europe" in page


def test_htmx_request_gets_only_the_results(login, marketer, active_customers):
    response = login(marketer).get(reverse("customer-list"), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert 'id="customer-table"' in body and "<html" not in body


def test_invalid_filter_says_so_and_lists_nothing(login, marketer, active_customers):
    body = login(marketer).get(reverse("customer-list"), {"stage": "sleeping"}).content.decode()
    assert "not one of the available choices" in body
    assert 'id="customer-table"' not in body


def test_bad_page_link_falls_back_to_the_first_page(login, marketer, active_customers):
    body = login(marketer).get(reverse("customer-list"), {"after": "%%%"}).content.decode()
    assert "no longer valid" in body and 'id="customer-table"' in body


def test_list_query_count_is_bounded(
    login, marketer, active_customers, django_assert_max_num_queries
):
    client = login(marketer)
    for c in range(40):
        CustomerFactory(region="Europe", owner=marketer if c % 2 else None)
    with django_assert_max_num_queries(10):
        client.get(reverse("customer-list"), {"region": "Europe", "sort": "-revenue"})


def _walk(sort_name: str, size: int) -> list[int]:
    sort = SORTS[sort_name]
    seen, after = [], None
    for _ in range(100):
        page = keyset_page(customers_with_state(), sort, after=after, size=size)
        seen += [c.pk for c in page.rows]
        after = page.next_cursor
        if after is None:
            return seen
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("sort_name", list(SORTS))
def test_keyset_pages_cover_everyone_once_in_order_even_with_ties(sort_name):
    base = date(2026, 3, 1)
    for i in range(37):
        CustomerFactory(
            name=f"N{i % 5}",  # many equal names
            lifetime_revenue=Decimal(i % 4),  # many equal revenues
            renewal_date=None if i % 3 == 0 else base + timedelta(days=i % 6),  # ties + empty
        )
    expected_order = list(
        customers_with_state()
        .order_by(*_python_order(SORTS[sort_name]), "pk")
        .values_list("pk", flat=True)
    )
    assert _walk(sort_name, 7) == expected_order
    assert len(set(expected_order)) == 37


def _python_order(sort):
    from django.db.models import F

    expr = F(sort.field)
    return [expr.desc(nulls_last=True) if sort.descending else expr.asc(nulls_last=True)]


def test_view_pages_follow_next_links_without_duplicates(login, marketer):
    for i in range(120):
        CustomerFactory(lifetime_revenue=Decimal(i % 3))
    client = login(marketer)
    seen: list[str] = []
    url = reverse("customer-list") + "?sort=-revenue"
    for _ in range(5):
        response = client.get(url)
        rows = response.context["page"].rows
        seen += [c.external_id for c in rows]
        cursor = response.context["page"].next_cursor
        if not cursor:
            break
        url = reverse("customer-list") + f"?sort=-revenue&after={cursor}"
    assert len(seen) == 120 and len(set(seen)) == 120


def test_cursor_from_another_sort_is_rejected():
    CustomerFactory(renewal_date=None)
    CustomerFactory(renewal_date=date(2026, 1, 1))
    page = keyset_page(customers_with_state(), SORTS["name"], size=1)
    with pytest.raises(BadCursor):
        keyset_page(customers_with_state(), SORTS["renewal"], after=page.next_cursor)


def test_result_count_is_exact_when_small_and_an_estimate_when_big():
    for _ in range(20):
        CustomerFactory()
    small = result_count(Customer.objects.all())
    assert small.exact and small.value == 20 and str(small) == "20"
    big = result_count(Customer.objects.all(), limit=3)
    if connection.vendor == "postgresql":
        assert not big.exact and big.value >= 4 and str(big).startswith("about ")
    else:
        assert big.exact and big.value == 20


# --- customer page -----------------------------------------------------------------------


def test_customer_page_explains_and_shows_history(login, cs_user, django_assert_max_num_queries):
    now = timezone.now()
    customer = CustomerFactory(lifetime_revenue=Decimal("1234"))
    login_type = TouchpointType.objects.get(key="login")
    email = TouchpointType.objects.get(key="email_open")
    for day in (1, 3, 9):
        touchpoint_add(customer=customer, type=login_type, occurred_at=now - timedelta(days=day))
    touchpoint_add(customer=customer, type=email, occurred_at=now - timedelta(days=2))
    engagement_refresh(now=now)
    client = login(cs_user)
    with django_assert_max_num_queries(16):
        body = client.get(reverse("customer-detail", args=[customer.pk])).content.decode()
    assert "Why this score and stage" in body and "Logged in" in body
    assert "Stage rule that fired" in body
    assert "Product <strong>3</strong>" in body and "Email <strong>1</strong>" in body
    assert 'id="customer-notes"' in body and 'id="enrollments"' in body
    assert body.count('class="plotly-graph-div"') >= 2  # gauge and touchpoint timeline


def test_unknown_customer_is_404(login, marketer):
    assert login(marketer).get(reverse("customer-detail", args=[999999])).status_code == 404


def test_score_history_reads_this_customers_slot_from_snapshots():
    ids = np.array([1023, 1024, 1025])  # block boundary
    for day, scores in ((date(2026, 5, 1), [10, 20, 30]), (date(2026, 5, 2), [11, 21, 31])):
        for block in snapshots.pack_blocks(
            ids, np.array(scores, float), np.zeros(3), np.array([0.5, np.nan, 0.25])
        ):
            ScoreSnapshot.objects.create(
                day=day,
                block=block.block,
                scores=block.scores,
                stages=block.stages,
                p_alive=block.p_alive,
            )
    history = score_history(1024, today=date(2026, 5, 3))
    assert [(p.day.day, p.score, p.p_alive) for p in history] == [(1, 20.0, None), (2, 21.0, None)]
    assert [p.p_alive for p in score_history(1025, today=date(2026, 5, 3))] == [0.25, 0.25]


def test_action_effects_compare_four_weeks_before_and_after():
    t0 = datetime(2026, 5, 1, tzinfo=UTC)

    def row(i, days, key="login", source="app", engagement=True):
        return TouchRow(i, t0 + timedelta(days=days), key, key, "product", engagement, source)

    rows = [row(i, -d) for i, d in enumerate((1, 5, 9, 13, 40))]  # 4 in the 4 weeks before
    rows += [row(10 + i, d) for i, d in enumerate(range(1, 28, 3))]  # 9 in the 4 weeks after
    rows.append(row(99, 0, key="email_open", source="campaign"))  # the action itself
    effects = action_effects(rows, now=t0 + timedelta(days=60))
    assert len(effects) == 1
    assert effects[0].per_week_before == 1.0 and effects[0].per_week_after == 2.25
    assert effects[0].after_complete and effects[0].change == 1.25
    cs = action_effects(
        [*rows, row(100, 20, key="cs_call", engagement=False)], now=t0 + timedelta(days=30)
    )
    assert [e.action.kind for e in cs] == ["cs", "campaign"] and not cs[0].after_complete

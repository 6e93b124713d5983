"""The stored renewal-risk list: full and partial refreshes, when the beat task runs them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.models import Customer, DashboardSummary, Engagement, JobRun, ScoreState
from success.models import RenewalRisk, RenewalRiskRefresh
from success.risk import FULL_MAX_AGE, renewal_risk_refresh, renewal_risk_update
from success.selectors import renewal_risk_accounts, renewal_risk_summary
from success.tasks import summaries_refresh_task
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def _slipping(revenue: str, *, renews_in: int = 10, owner=None) -> Customer:
    c = CustomerFactory(
        renewal_date=timezone.localdate() + timedelta(days=renews_in),
        lifetime_revenue=Decimal(revenue),
        owner=owner,
    )
    Engagement.objects.filter(customer=c).update(stage="at_risk")
    ScoreState.objects.filter(customer=c).update(p_alive=0.5)
    ScoreState.objects.filter(customer=c).update(decay_sum=1e9)  # score ~100: the stage counts
    return c


def test_full_refresh_stores_the_ranked_list_and_its_time():
    a, b = _slipping("100"), _slipping("300")
    assert renewal_risk_refresh() == 2
    assert [c.pk for c in renewal_risk_accounts()] == [b.pk, a.pk]
    summary = renewal_risk_summary()
    assert summary.accounts == 2 and summary.revenue_at_risk == pytest.approx(200.0)
    assert summary.as_of == RenewalRiskRefresh.objects.get().computed_at


def test_second_full_refresh_changes_only_what_changed():
    a, b = _slipping("100"), _slipping("300")
    renewal_risk_refresh()
    first = dict(RenewalRisk.objects.values_list("customer_id", "computed_at"))
    Engagement.objects.filter(customer=a).update(stage="engaged")  # recovered
    ScoreState.objects.filter(customer=a).update(p_alive=0.9)
    Customer.objects.filter(pk=b.pk).update(lifetime_revenue=Decimal("1000"))
    c = _slipping("50")
    later = timezone.now() + timedelta(minutes=1)
    renewal_risk_refresh(now=later)
    rows = dict(RenewalRisk.objects.values_list("customer_id", "revenue_at_risk"))
    assert rows == {b.pk: pytest.approx(500.0), c.pk: pytest.approx(25.0)}
    assert RenewalRisk.objects.get(pk=b.pk).computed_at == later != first[b.pk]


def test_partial_refresh_touches_only_the_given_accounts():
    a, b = _slipping("100"), _slipping("300")
    renewal_risk_refresh()
    Customer.objects.filter(pk__in=[a.pk, b.pk]).update(lifetime_revenue=Decimal("2000"))
    assert renewal_risk_refresh(customer_ids=[a.pk]) == 1
    rows = dict(RenewalRisk.objects.values_list("customer_id", "revenue_at_risk"))
    assert rows == {a.pk: pytest.approx(1000.0), b.pk: pytest.approx(150.0)}  # b: not yet
    Engagement.objects.filter(customer=a).update(stage="engaged")
    ScoreState.objects.filter(customer=a).update(p_alive=0.9)
    assert renewal_risk_refresh(customer_ids=[a.pk]) == 0
    assert list(RenewalRisk.objects.values_list("customer_id", flat=True)) == [b.pk]


def test_update_is_full_when_due_else_only_changed_engine_rows():
    now = timezone.now()
    a = _slipping("100")
    assert renewal_risk_update(now=now)["renewal_risk"] == "full"
    b = _slipping("300")  # not on the stored list yet
    ScoreState.objects.filter(customer=b).update(computed_at=now - timedelta(days=1))
    soon = now + timedelta(minutes=1)
    assert renewal_risk_update(now=soon) == {"renewal_risk": "changed", "accounts": 0}
    ScoreState.objects.filter(customer=b).update(computed_at=soon)  # the engine rewrote it
    assert renewal_risk_update(now=soon + timedelta(minutes=1))["renewal_risk"] == "changed"
    assert set(RenewalRisk.objects.values_list("customer_id", flat=True)) == {a.pk, b.pk}

    JobRun.objects.create(kind="nightly", status="succeeded", started_at=soon, finished_at=soon)
    assert renewal_risk_update(now=soon + timedelta(minutes=2))["renewal_risk"] == "full"
    later = soon + timedelta(minutes=2) + FULL_MAX_AGE
    assert renewal_risk_update(now=later)["renewal_risk"] == "full"


def test_beat_task_refreshes_dashboard_and_risk_when_due():
    _slipping("100")
    done = summaries_refresh_task()
    assert "dashboard_seconds" in done and done["renewal_risk"] == "full"
    assert DashboardSummary.objects.count() == 1 and RenewalRisk.objects.count() == 1
    done = summaries_refresh_task()  # nothing happened since: no new dashboard summary
    assert "dashboard_seconds" not in done and DashboardSummary.objects.count() == 1

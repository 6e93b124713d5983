from datetime import UTC, date, datetime, timedelta

import pytest

from customers.engagement import engagement_refresh, touchpoint_add
from customers.filters import CustomerFilter
from customers.models import Customer, Engagement, TouchpointType
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def ids(params) -> set[str]:
    f = CustomerFilter(params, queryset=Customer.objects.all(), now=NOW)
    assert f.is_valid(), f.errors
    return set(f.qs.values_list("external_id", flat=True))


@pytest.fixture
def population():
    login = TouchpointType.objects.get(key="login")
    bounce = TouchpointType.objects.get(key="email_bounce")  # email, not an engagement action
    active = CustomerFactory(external_id="active", region="Europe", plan="Pro")
    quiet = CustomerFactory(external_id="quiet", region="APAC", renewal_date=date(2026, 6, 20))
    never = CustomerFactory(external_id="never", region="Europe", spend_tier="high")
    for day in range(0, 20, 2):
        touchpoint_add(customer=active, type=login, occurred_at=NOW - timedelta(days=day))
    touchpoint_add(customer=quiet, type=login, occurred_at=NOW - timedelta(days=90))
    touchpoint_add(customer=quiet, type=bounce, occurred_at=NOW - timedelta(days=3))
    engagement_refresh(now=NOW)
    return active, quiet, never


def test_each_filter_selects_the_right_customers(population):
    assert ids({}) == {"active", "quiet", "never"}
    assert ids({"region": "Europe"}) == {"active", "never"}
    assert ids({"plan": "Pro"}) == {"active"}
    assert ids({"spend_tier": ["high"]}) == {"never"}
    assert ids({"score_min": 30}) == {"active"}
    assert ids({"score_max": 1}) == {"quiet", "never"}  # a bounce pushed quiet to 0
    assert ids({"inactive_days_min": 60}) == {"quiet", "never"}
    assert ids({"inactive_days_max": 7}) == {"active"}
    assert ids({"renewal_within_days": 30}) == {"quiet"}
    assert ids({"channel": "email", "channel_days": 7}) == {"quiet"}
    assert ids({"channel": "email", "channel_days": 2}) == set()
    assert ids({"q": "quiet"}) == {"quiet"}
    stage = Engagement.objects.get(customer__external_id="active").stage
    assert "active" in ids({"stage": [stage]})


def test_combined_filters_and_invalid_values(population):
    assert ids({"region": "Europe", "score_min": 30}) == {"active"}
    bad = CustomerFilter({"stage": ["sleepy"], "score_min": "lots"}, now=NOW)
    assert not bad.is_valid()
    assert set(bad.errors) == {"stage", "score_min"}

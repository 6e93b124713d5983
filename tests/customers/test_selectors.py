from datetime import UTC, datetime, timedelta

import pytest

from customers.engagement import engagement_refresh, touchpoint_add
from customers.models import TouchpointType
from customers.selectors import SCORE_ORDER_FIELD, customers_with_state, score_band_q
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_score_band_filter_agrees_with_the_live_score_and_order():
    login = TouchpointType.objects.get(key="login")
    customers = [CustomerFactory() for _ in range(6)]
    for i, customer in enumerate(customers):
        for day in range(i * 3):
            touchpoint_add(customer=customer, type=login, occurred_at=NOW - timedelta(days=day))
    engagement_refresh(now=NOW)

    rows = list(customers_with_state(now=NOW).order_by(f"-{SCORE_ORDER_FIELD}"))
    scores = [c.score for c in rows]
    assert scores == sorted(scores, reverse=True)
    assert scores[-1] == 0.0 and scores[0] > 50
    assert all(c.engagement.stage for c in rows)

    low, high = 10.0, 60.0
    expected = {c.pk for c in rows if low <= c.score <= high}
    assert expected and len(expected) < len(rows)
    got = set(
        customers_with_state(now=NOW)
        .filter(score_band_q(low, high, now=NOW))
        .values_list("pk", flat=True)
    )
    assert got == expected
    assert set(
        customers_with_state(now=NOW)
        .filter(score_band_q(0, None, now=NOW))
        .values_list("pk", flat=True)
    ) == {c.pk for c in rows}


def test_customer_list_is_one_query(django_assert_num_queries):
    for _ in range(5):
        CustomerFactory()
    with django_assert_num_queries(2):  # settings row + the list itself
        rows = list(customers_with_state(now=NOW))
        assert [r.engagement.stage for r in rows] == ["new"] * 5

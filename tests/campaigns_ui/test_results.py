"""campaigns/results.py on a plan with known counts (tests/campaigns_ui/conftest.py)."""

import math

import pytest

from campaigns import results
from tests.campaigns_ui.conftest import NOW


@pytest.fixture
def res(known_plan, settings):
    settings.CAMPAIGNS_ACTION_COSTS = {"email": 1.0}
    return results.plan_results_live(known_plan.plan, now=NOW)


def test_overall_lift_and_ci_match_newcombes_example(res):
    o = res.overall
    assert (o.n_treat, o.x_treat, o.n_ctrl, o.x_ctrl) == (70, 56, 80, 48)
    assert o.lift == pytest.approx(0.2000, abs=1e-4)
    assert o.lower == pytest.approx(0.0524, abs=1e-4)
    assert o.upper == pytest.approx(0.3339, abs=1e-4)
    assert o.verdict.text == "lift +20.0 pts, CI +5.2 to +33.4: works"
    assert (o.sent, o.held_out) == (70 + 40, 80 + 60)


def test_per_step_counts_customers_who_reached_the_step(res):
    step1, step2 = res.steps
    assert (step1.n_treat, step1.x_treat, step1.n_ctrl, step1.x_ctrl) == (70, 30, 80, 20)
    assert (step2.n_treat, step2.x_treat, step2.n_ctrl, step2.x_ctrl) == (40, 26, 60, 28)
    assert step1.sent == 70 and step1.held_out == 80
    assert step2.sent == 40 and step2.held_out == 60
    # step 2: 26/40 − 28/60 = 0.65 − 0.4667 = 0.1833
    assert step2.lift == pytest.approx(0.18333, abs=1e-4)


def test_per_segment(res, known_plan):
    (seg,) = res.segments
    assert seg.label == known_plan.segment.name
    assert (seg.n_treat, seg.x_treat, seg.n_ctrl, seg.x_ctrl) == (70, 56, 80, 48)


def test_revenue_value_regained_and_roi(res):
    w30, _w60, w90 = res.revenue
    # 10 × 100 over 70 treated; 2 × 100 over 80 control — all purchases on day 10.
    assert w30.per_treat == pytest.approx(1000 / 70)
    assert w30.per_ctrl == pytest.approx(200 / 80)
    assert w90.n_treat == 70 and w90.n_ctrl == 80
    # value regained = (14.2857 − 2.5) × 70 = 825; coupon cost 5 × 10 = 50;
    # action cost = 70 emails × 1.0 + 40 coupons × 0 = 70; ROI = (825 − 120) / 120 = 5.875
    assert res.roi.value_regained == pytest.approx(825.0)
    assert res.roi.coupon_cost == pytest.approx(50.0)
    assert res.roi.action_cost == pytest.approx(70.0)
    assert res.roi.roi == pytest.approx(5.875)
    assert (res.coupons_issued, res.coupons_redeemed) == (40, 5)


def test_revenue_windows_not_yet_elapsed_are_empty(known_plan, settings):
    from datetime import timedelta

    r = results.plan_results_live(known_plan.plan, now=NOW - timedelta(days=50))  # 50 days in
    w30, w60, w90 = r.revenue
    assert w30.n_treat == 70 and w60.n_treat == 0 and w90.per_treat is None


def test_cumulative_curve(res):
    c = res.curve
    assert c.treatment[2] == 0
    assert c.treatment[3] == pytest.approx(30 / 70)
    assert c.control[3] == pytest.approx(20 / 80)
    assert c.treatment[12] == pytest.approx(56 / 70)
    assert c.control[60] == pytest.approx(48 / 80)


def test_best_moment_buckets(res):
    (m,) = res.moments
    # days since last action at the first step = 27 → bucket 3 (21–27)
    assert m.treatment.counts[3] == 70 and m.treatment.reengaged[3] == 56
    assert m.median_days_at_enrollment == 20
    assert m.treatment.fall_at is None  # one bucket: no slope
    assert math.isnan(m.treatment.rate[0])


def test_plans_overview(known_plan):
    overview = results.plans_overview([known_plan.plan])
    c = overview[known_plan.plan.pk]
    assert c.enrolled == 150 and c.lift == pytest.approx(0.2)


def test_results_queries_are_bounded(known_plan, django_assert_max_num_queries):
    with django_assert_max_num_queries(9):
        results.plan_results_live(known_plan.plan, now=NOW)


def test_results_document_is_plain_json(known_plan):
    import json

    doc = results.plan_results(known_plan.plan, now=NOW)
    text = json.dumps(doc, allow_nan=False)  # raises on NaN / numpy / model instances
    assert doc["overall"]["lift"] == pytest.approx(0.2)
    assert doc["overall"]["ci95"] == pytest.approx([0.0524, 0.3339], abs=1e-4)
    assert doc["roi"]["value_regained"] == pytest.approx(825.0)
    assert "works" in text


def test_api_serves_the_results_document(known_plan, marketer):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(marketer)
    r = client.get(f"/api/v1/plans/{known_plan.plan.pk}/results/")
    assert r.status_code == 200, r.content[:300]
    assert r.json()["results"]["overall"]["treatment"] == {
        "enrolled": 70,
        "reengaged": 56,
        "rate": pytest.approx(0.8),
    }

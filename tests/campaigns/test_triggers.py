"""Always-on triggers: entered a stage (from stage-change rows since launch), recency past
N days, recency past k× the customer's own usual gap; one-off launches at their time."""

from datetime import timedelta

from campaigns import services
from campaigns.models import Enrollment
from campaigns.selectors import launch_audience
from campaigns.tick import plans_tick
from customers.models import Engagement, ScoreState, StageChange
from segments.models import Segment
from tests.campaigns.conftest import T0, quiet_customers, three_step_plan


def test_stage_changes_before_launch_are_history_after_launch_triggers(marketer):
    before = quiet_customers(2, at=T0 - timedelta(days=2))
    plan = three_step_plan(marketer)
    services.plan_launch(plan, marketer, now=T0 - timedelta(days=1))
    after = quiet_customers(3, at=T0)
    assert plans_tick(now=T0 + timedelta(minutes=1)).enrolled == 3
    enrolled = set(Enrollment.objects.values_list("customer_id", flat=True))
    assert enrolled == {c.pk for c in after}
    assert not enrolled & {c.pk for c in before}
    # The next tick looks back past its watermark but does not enrol anybody twice.
    assert plans_tick(now=T0 + timedelta(minutes=2)).enrolled == 0


def test_a_late_committed_stage_change_is_still_seen(marketer):
    plan = three_step_plan(marketer)
    services.plan_launch(plan, marketer, now=T0 - timedelta(days=1))
    plans_tick(now=T0 + timedelta(minutes=5))
    # Stamped 2 minutes before the last tick but committed after it.
    late = quiet_customers(1, at=T0 + timedelta(minutes=3))
    assert plans_tick(now=T0 + timedelta(minutes=6)).enrolled == 1
    assert Enrollment.objects.get().customer_id == late[0].pk


def test_customer_who_left_the_stage_before_the_tick_is_not_enrolled(marketer):
    plan = three_step_plan(marketer)
    services.plan_launch(plan, marketer, now=T0 - timedelta(days=1))
    customer = quiet_customers(1, at=T0)[0]
    Engagement.objects.filter(customer=customer).update(stage="at_risk")
    StageChange.objects.create(
        customer=customer, from_stage="cooling", to_stage="at_risk", changed_at=T0, score=5
    )
    assert plans_tick(now=T0 + timedelta(minutes=1)).enrolled == 0


def test_recency_in_days(marketer):
    customers = quiet_customers(3, at=T0)  # last action 20 days before T0
    ScoreState.objects.filter(customer=customers[0]).update(
        last_engagement_at=T0 - timedelta(days=5)
    )
    plan = three_step_plan(
        marketer, trigger_kind="recency_days", trigger_params={"days": 14}, holdout=0
    )
    services.plan_launch(plan, marketer, now=T0)
    assert plans_tick(now=T0 + timedelta(minutes=1)).enrolled == 2
    assert not Enrollment.objects.filter(customer=customers[0]).exists()


def test_recency_as_a_multiple_of_the_customers_own_gap(marketer):
    customers = quiet_customers(3, at=T0)  # 20 days quiet
    gaps = [3.0, 8.0, None]  # 20 > 4×3; 20 < 4×8; no gap: the engine default (14) → 20 < 56
    for customer, gap in zip(customers, gaps, strict=True):
        ScoreState.objects.filter(customer=customer).update(expected_gap_days=gap)
    plan = three_step_plan(
        marketer, trigger_kind="recency_gap", trigger_params={"multiple": 4}, holdout=0
    )
    audience = launch_audience(plan, now=T0)
    assert audience.eligible == 1 and audience.sample[0].id == customers[0].pk
    services.plan_launch(plan, marketer, now=T0)
    plans_tick(now=T0 + timedelta(minutes=1))
    assert list(Enrollment.objects.values_list("customer_id", flat=True)) == [customers[0].pk]


def test_one_off_launch_enrols_its_segment_once_at_the_start_time(marketer):
    quiet_customers(4, at=T0)
    segment = Segment.objects.create(name="Cooling now", params={"stage": ["cooling"]})
    plan = three_step_plan(
        marketer, trigger_kind="segment_once", trigger_params={}, segment=segment, holdout=25
    )
    audience = launch_audience(plan, now=T0)
    assert audience.eligible == 4 and audience.treatment + audience.control == 4
    services.plan_launch(plan, marketer, start_at=T0 + timedelta(hours=2), now=T0)
    assert plan.status == "scheduled"
    assert plans_tick(now=T0 + timedelta(hours=1)).enrolled == 0
    assert plans_tick(now=T0 + timedelta(hours=2, minutes=1)).enrolled == 4
    plan.refresh_from_db()
    assert plan.status == "active"
    control = Enrollment.objects.filter(arm="control").count()
    assert control == audience.control  # the preview's split is the real one
    quiet_customers(2, at=T0 + timedelta(hours=3))
    assert plans_tick(now=T0 + timedelta(hours=4)).enrolled == 0

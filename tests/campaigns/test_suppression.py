"""Each suppression rule keeps a customer out, in the launch preview and in the tick alike."""

from datetime import timedelta

from campaigns import services
from campaigns.models import Enrollment, StepExecution
from campaigns.selectors import launch_audience
from campaigns.tick import plans_tick
from segments.models import Segment
from tests.campaigns.conftest import T0, quiet_customers, three_step_plan


def one_off(user, name, segment, **fields):
    return three_step_plan(
        user, name=name, trigger_kind="segment_once", trigger_params={}, segment=segment, **fields
    )


def cooling_segment():
    return Segment.objects.create(name="Cooling", params={"stage": ["cooling"]})


def test_opted_out_customers_are_not_enrolled(marketer):
    customers = quiet_customers(5)
    customers[0].email_opt_out = True
    customers[0].save()
    plan = one_off(marketer, "Once", cooling_segment())
    audience = launch_audience(plan, now=T0)
    assert audience.eligible == 4
    assert audience.suppressed["opted_out"] == 1
    assert audience.suppressed_sample["opted_out"][0].id == customers[0].pk
    services.plan_launch(plan, marketer, now=T0)
    plans_tick(now=T0 + timedelta(minutes=1))
    enrolled = set(Enrollment.objects.filter(plan=plan).values_list("customer_id", flat=True))
    assert customers[0].pk not in enrolled and len(enrolled) == 4


def test_a_customer_is_in_one_active_plan_and_priority_decides(marketer):
    quiet_customers(3)
    segment = cooling_segment()
    low = one_off(marketer, "Low", segment, priority=10)
    services.plan_launch(low, marketer, now=T0)
    plans_tick(now=T0 + timedelta(minutes=1))
    assert Enrollment.objects.filter(plan=low, status="active").count() == 3

    same = one_off(marketer, "Same", segment, priority=10)
    assert launch_audience(same, now=T0).suppressed["other_plan"] == 3

    high = one_off(marketer, "High", segment, priority=50)
    assert launch_audience(high, now=T0).eligible == 3
    services.plan_launch(high, marketer, now=T0 + timedelta(minutes=2))
    plans_tick(now=T0 + timedelta(minutes=3))
    assert Enrollment.objects.filter(plan=high, status="active").count() == 3
    moved = Enrollment.objects.filter(plan=low)
    assert {e.status for e in moved} == {"stopped"}
    assert "higher-priority" in moved[0].exit_reason


def test_re_entry_waits_for_the_cool_down(marketer):
    customers = quiet_customers(1)
    plan = three_step_plan(
        marketer,
        trigger_kind="recency_days",
        trigger_params={"days": 10},
        cooldown_days=30,
        holdout=0,
    )
    services.plan_launch(plan, marketer, now=T0)
    plans_tick(now=T0 + timedelta(minutes=1))
    enrollment = Enrollment.objects.get(plan=plan)
    services.enrollment_stop(enrollment, marketer, reason="test")
    Enrollment.objects.filter(pk=enrollment.pk).update(ended_at=T0 + timedelta(days=1))

    assert launch_audience(plan, now=T0 + timedelta(days=20)).suppressed["cooldown"] == 1
    plans_tick(now=T0 + timedelta(days=20))
    assert Enrollment.objects.filter(plan=plan).count() == 1
    plans_tick(now=T0 + timedelta(days=31, minutes=1))
    assert Enrollment.objects.filter(plan=plan, customer=customers[0]).count() == 2


def test_weekly_frequency_cap_suppresses_enrollment(marketer):
    customers = quiet_customers(2)
    other = one_off(marketer, "Other", cooling_segment())
    services.plan_launch(other, marketer, now=T0)
    plans_tick(now=T0 + timedelta(minutes=1))
    enrollment = Enrollment.objects.get(plan=other, customer=customers[0])
    services.enrollment_stop(enrollment, marketer)
    step = other.steps.get(position=1)
    StepExecution.objects.filter(enrollment=enrollment).delete()
    StepExecution.objects.create(
        enrollment=enrollment,
        step=step,
        plan=other,
        customer=customers[0],
        action="email",
        status="sent",
        due_at=T0,
        next_attempt_at=T0,
        performed_at=T0 + timedelta(days=1),
        idempotency_key="cap-test",
    )
    services.enrollment_stop(Enrollment.objects.get(plan=other, customer=customers[1]), marketer)
    plan = three_step_plan(
        marketer,
        name="Capped",
        trigger_kind="recency_days",
        trigger_params={"days": 10},
        frequency_cap_per_week=1,
    )
    audience = launch_audience(plan, now=T0 + timedelta(days=2))
    assert audience.suppressed["frequency_cap"] == 1
    assert audience.eligible == 1
    # A week after that send the cap no longer applies.
    assert launch_audience(plan, now=T0 + timedelta(days=8, minutes=1)).eligible == 2


def test_dispatch_holds_back_messages_over_the_cap(marketer, outbox):
    quiet_customers(1)
    plan = services.plan_create(
        user=marketer,
        name="Chatty",
        trigger_kind="stage_entered",
        trigger_params={"stage": "cooling"},
        holdout_percent=0,
        frequency_cap_per_week=1,
    )
    for _ in range(2):
        services.step_add(
            plan=plan,
            user=marketer,
            action="email",
            delay_days=1,
            delay_basis="previous_step",
            config={"subject": "Hi", "body_text": "Hello {{ name }}"},
        )
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    from campaigns.dispatch import dispatch_due

    for day in (0, 1, 2, 3):
        plans_tick(now=T0 + timedelta(days=day, minutes=5))
        dispatch_due(now=T0 + timedelta(days=day, minutes=5))
    assert len(outbox) == 1
    held = StepExecution.objects.get(step__position=2)
    assert held.status == "pending" and "frequency cap" in held.error
    assert held.next_attempt_at == StepExecution.objects.get(step__position=1).performed_at + (
        timedelta(days=7)
    )
    plans_tick(now=T0 + timedelta(days=8, minutes=10))
    dispatch_due(now=T0 + timedelta(days=8, minutes=10))
    assert len(outbox) == 2


def test_opt_out_after_enrollment_ends_it_and_sends_nothing(marketer, outbox):
    customers = quiet_customers(1)
    plan = three_step_plan(marketer, holdout=0)
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    plans_tick(now=T0 + timedelta(minutes=1))
    customers[0].email_opt_out = True
    customers[0].save()
    plans_tick(now=T0 + timedelta(days=7, minutes=1))
    from campaigns.dispatch import dispatch_due

    dispatch_due(now=T0 + timedelta(days=7, minutes=1))
    assert outbox == []
    assert Enrollment.objects.get(plan=plan).status == "opted_out"


def test_deleted_customer_ends_the_enrollment(marketer):
    customers = quiet_customers(1)
    plan = three_step_plan(marketer, holdout=0)
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    plans_tick(now=T0 + timedelta(minutes=1))
    customers[0].delete()
    plans_tick(now=T0 + timedelta(minutes=2))
    enrollment = Enrollment.objects.get(plan=plan)
    assert enrollment.status == "deleted" and enrollment.customer_id is None

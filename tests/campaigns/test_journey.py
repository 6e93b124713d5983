"""A customer goes quiet, enters cooling, is enrolled, gets the day-7 email and the day-14
coupon, logs in and is counted re-engaged; control customers get nothing."""

from datetime import timedelta

from campaigns import services
from campaigns.dispatch import dispatch_due
from campaigns.models import Coupon, Enrollment, StepExecution
from campaigns.tick import plans_tick
from tests.campaigns.conftest import T0, comes_back, quiet_customers, three_step_plan


def run(at):
    tick = plans_tick(now=at)
    sent = dispatch_due(now=at)
    return tick, sent


def test_journey_in_process(marketer, outbox):
    plan = three_step_plan(marketer, holdout=50)
    services.plan_launch(plan, marketer, now=T0 - timedelta(days=1))
    customers = quiet_customers(20, at=T0)

    tick, _ = run(T0 + timedelta(minutes=1))
    assert tick.enrolled == 20
    enrollments = {e.customer_id: e for e in Enrollment.objects.filter(plan=plan)}
    treated = [c for c in customers if enrollments[c.pk].arm == "treatment"]
    control = [c for c in customers if enrollments[c.pk].arm == "control"]
    assert treated and control
    assert outbox == []

    run(T0 + timedelta(days=6, hours=23))
    assert outbox == []
    tick, sent = run(T0 + timedelta(days=7, minutes=2))
    assert tick.executions == 20 and tick.held_out == len(control)
    assert sent.sent == len(treated)
    assert sorted(m.to[0] for m in outbox) == sorted(c.email for c in treated)
    first = outbox[0]
    assert "We miss you" in first.subject
    assert "27 days" in first.body
    assert first.extra_headers["Message-ID"].startswith("<lc")

    tick, sent = run(T0 + timedelta(days=14, minutes=2))
    assert Coupon.objects.count() == len(treated)
    tick, sent = run(T0 + timedelta(days=14, minutes=3))
    coupon_mails = outbox[len(treated) :]
    assert len(coupon_mails) == len(treated)
    codes = set(Coupon.objects.values_list("code", flat=True))
    assert all(any(code in m.body for code in codes) for m in coupon_mails)

    returning = treated[0]
    comes_back(returning, T0 + timedelta(days=15))
    run(T0 + timedelta(days=15, minutes=5))
    enrollment = Enrollment.objects.get(plan=plan, customer=returning)
    assert enrollment.status == "reengaged"
    assert enrollment.reengaged_after_step.position == 3
    assert StepExecution.objects.filter(enrollment__arm="control", status="sent").count() == 0
    assert StepExecution.objects.filter(enrollment__arm="control", status="held_out").count() == (
        3 * len(control)
    )
    run(T0 + timedelta(days=30))
    assert Enrollment.objects.filter(plan=plan, status="exhausted").count() == 19

"""Coupons and customer-success tasks: made once per treated customer, none for control."""

from datetime import timedelta

from campaigns import services
from campaigns.dispatch import dispatch_due
from campaigns.models import Coupon, CsTask, Enrollment
from campaigns.selectors import cs_tasks_for, cs_tasks_unassigned
from campaigns.tick import plans_tick
from tests.campaigns.conftest import T0, quiet_customers


def test_cs_task_goes_to_the_customers_owner_and_coupons_are_unique(marketer, cs_user):
    customers = quiet_customers(6, owner=cs_user)
    customers[-1].owner = None
    customers[-1].save()
    plan = services.plan_create(
        user=marketer,
        name="Call them",
        trigger_params={"stage": "cooling"},
        holdout_percent=0,
    )
    services.step_add(
        plan=plan,
        user=marketer,
        action="coupon",
        config={"kind": "percent", "value": 10, "expires_days": 14},
    )
    services.step_add(
        plan=plan,
        user=marketer,
        action="cs_task",
        delay_days=0,
        config={"title": "Call {{ name }}", "note": "Score {{ score }}", "due_days": 2},
    )
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    for minute in (1, 2, 3):
        plans_tick(now=T0 + timedelta(minutes=minute))
        dispatch_due(now=T0 + timedelta(minutes=minute))
    codes = list(Coupon.objects.values_list("code", flat=True))
    assert len(codes) == len(set(codes)) == 6
    coupon = Coupon.objects.get(customer=customers[0])
    assert coupon.expires_at == T0 + timedelta(minutes=1, days=14)
    mine = list(cs_tasks_for(cs_user))
    assert len(mine) == 5 and mine[0].title == f"Call {customers[0].name}"
    assert mine[0].due_at == T0 + timedelta(minutes=2, days=2)
    assert [t.customer_id for t in cs_tasks_unassigned()] == [customers[-1].pk]
    services.cs_task_complete(mine[0], cs_user)
    assert len(cs_tasks_for(cs_user)) == 4


def test_control_customers_get_no_coupon_and_no_task(marketer, cs_user):
    quiet_customers(30, owner=cs_user)
    plan = services.plan_create(
        user=marketer,
        name="Half held out",
        trigger_params={"stage": "cooling"},
        holdout_percent=50,
    )
    services.step_add(plan=plan, user=marketer, action="coupon", config={"value": 10})
    services.step_add(plan=plan, user=marketer, action="cs_task", config={"title": "Call"})
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    for minute in (1, 2, 3):
        plans_tick(now=T0 + timedelta(minutes=minute))
        dispatch_due(now=T0 + timedelta(minutes=minute))
    control = set(Enrollment.objects.filter(arm="control").values_list("customer_id", flat=True))
    assert 0 < len(control) < 30
    assert not Coupon.objects.filter(customer_id__in=control).exists()
    assert not CsTask.objects.filter(customer_id__in=control).exists()
    assert Coupon.objects.count() == CsTask.objects.count() == 30 - len(control)

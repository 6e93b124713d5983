"""A small plan with known counts, shared by the results and view tests.

Newcombe's worked example as a plan: 70 treated customers of whom 56 re-engage, 80 control
customers of whom 48 do (lift 0.2000, CI 0.0524 to 0.3339). Two steps (day-7 email, day-14
coupon). After step 1: 30 treated / 20 control re-engage (on day 3 after enrollment); the
rest reach step 2 (40 / 60) and 26 / 28 re-engage (on day 12). Everybody was enrolled 100
days ago. Revenue: 10 treated and 2 control customers buy for 100 on day 10. Coupons: 40
issued to the treated customers who reached step 2, 5 redeemed at a cost of 10 each.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from campaigns.models import ActionKind, Coupon, Enrollment, Plan, PlanStep, StepExecution
from customers.models import Customer, Stage, Touchpoint, TouchpointType
from segments.models import Segment

NOW = datetime(2026, 9, 1, 12, tzinfo=UTC)


@dataclass
class KnownPlan:
    plan: Plan
    steps: list[PlanStep]
    segment: Segment
    customers: list[Customer]


def build_known_plan(*, name: str = "Win back", now: datetime = NOW) -> KnownPlan:
    segment = Segment.objects.create(name=f"{name} segment", params={"stage": ["cooling"]})
    plan = Plan.objects.create(
        name=name,
        trigger_kind="segment_once",
        segment=segment,
        status=Plan.Status.ACTIVE,
        holdout_percent=50,
    )
    s1 = PlanStep.objects.create(
        plan=plan,
        position=1,
        delay_days=7,
        action=ActionKind.EMAIL,
        config={"subject": "We miss you, {{ name }}", "body_text": "Hi {{ name }}"},
    )
    s2 = PlanStep.objects.create(
        plan=plan,
        position=2,
        delay_days=14,
        action=ActionKind.COUPON,
        config={"kind": "amount", "value": 10, "cost": 10, "expires_days": 30},
    )
    customers = Customer.objects.bulk_create(
        Customer(
            external_id=f"{name}-{i}",
            email=f"c{i}@{plan.pk}.example",
            name=f"Cust {i}",
            signup_date=(now - timedelta(days=400)).date(),
        )
        for i in range(150)
    )
    enrolled_at = now - timedelta(days=100)
    purchase = TouchpointType.objects.get(key="purchase")
    enrollments, executions, touchpoints, coupons = [], [], [], []
    # (arm, count, re-engaged after step 1, re-engaged after step 2, buyers)
    layout = [(Enrollment.Arm.TREATMENT, 70, 30, 26, 10), (Enrollment.Arm.CONTROL, 80, 20, 28, 2)]
    it = iter(customers)
    for arm, count, back1, back2, buyers in layout:
        for i in range(count):
            customer = next(it)
            reached2 = i >= back1
            if i < back1:
                status, after, back_day = Enrollment.Status.REENGAGED, s1, 3
            elif i < back1 + back2:
                status, after, back_day = Enrollment.Status.REENGAGED, s2, 12
            else:
                status, after, back_day = Enrollment.Status.EXHAUSTED, None, None
            enrollments.append(
                Enrollment(
                    plan=plan,
                    customer=customer,
                    arm=arm,
                    status=status,
                    segment=segment,
                    enrolled_at=enrolled_at,
                    stage_at_enrollment=Stage.COOLING,
                    last_engagement_at_enrollment=enrolled_at - timedelta(days=20),
                    days_since_last_action_at_first_step=27,
                    steps_done=2 if reached2 else 1,
                    reengaged_at=enrolled_at + timedelta(days=back_day) if back_day else None,
                    reengaged_after_step=after,
                    ended_at=now,
                )
            )
            if i < buyers:
                touchpoints.append(
                    Touchpoint(
                        customer=customer,
                        type=purchase,
                        value=Decimal("100.00"),
                        occurred_at=enrolled_at + timedelta(days=10),
                        source="test",
                    )
                )
    Enrollment.objects.bulk_create(enrollments)
    for e in enrollments:
        treat = e.arm == Enrollment.Arm.TREATMENT
        for step in (s1, s2) if e.steps_done == 2 else (s1,):
            executions.append(
                StepExecution(
                    enrollment=e,
                    step=step,
                    plan=plan,
                    customer=e.customer,
                    action=step.action,
                    status=StepExecution.Status.SENT if treat else StepExecution.Status.HELD_OUT,
                    due_at=e.enrolled_at + timedelta(days=step.delay_days),
                    next_attempt_at=e.enrolled_at + timedelta(days=step.delay_days),
                    idempotency_key=f"{plan.pk}-{e.pk}-{step.pk}",
                    performed_at=e.enrolled_at + timedelta(days=step.delay_days),
                )
            )
    StepExecution.objects.bulk_create(executions)
    for n, x in enumerate(x for x in executions if x.step == s2 and x.status == "sent"):
        coupons.append(
            Coupon(
                code=f"C{plan.pk}X{n:04d}",
                customer=x.customer,
                enrollment=x.enrollment,
                execution=x,
                kind="amount",
                value=10,
                cost=10,
                expires_at=now + timedelta(days=30),
                redeemed_at=now - timedelta(days=50) if n < 5 else None,
            )
        )
    Coupon.objects.bulk_create(coupons)
    Touchpoint.objects.bulk_create(touchpoints)
    return KnownPlan(plan, [s1, s2], segment, customers)


@pytest.fixture
def known_plan(db) -> KnownPlan:
    return build_known_plan()

"""Reading plans: who a trigger or launch would enrol, who is suppressed and why, tasks, counts.

The suppression rules live here once and serve both the launch screen (``launch_audience``)
and the tick that really enrols (``eligible_customers``), so the preview never disagrees
with what happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils import timezone

from campaigns.holdout import CONTROL, holdout_arms
from campaigns.models import (
    ActionKind,
    CsTask,
    Enrollment,
    Plan,
    StepExecution,
    TriggerKind,
)
from customers.models import Customer, EngagementSettings, StageChange
from segments.models import Segment
from segments.selectors import segment_customers

# Why a customer who matches a plan's trigger is not enrolled, in the order they are tested
# (a customer suppressed for several reasons is counted under the first).
SUPPRESSION_REASONS: dict[str, str] = {
    "opted_out": "opted out of email",
    "already_enrolled": "already in this plan",
    "other_plan": "already in a plan of higher or equal priority",
    "cooldown": "left this plan within its cool-down",
    "frequency_cap": "reached the weekly frequency cap",
}
WEEK = timedelta(days=7)
# Actions that reach the customer: these count toward (and are held back by) the weekly cap.
MESSAGE_ACTIONS = (ActionKind.EMAIL, ActionKind.SURVEY, ActionKind.WEBHOOK)
SAMPLE_SIZE = 10
# Above this many eligible customers the arm split is estimated, not hashed one by one.
EXACT_SPLIT_LIMIT = 200_000


def days_since_sql(column: str) -> str:
    """SQL for the days between the first parameter (a timestamp) and ``column``."""
    if connection.vendor == "postgresql":
        return f"(EXTRACT(EPOCH FROM (%s::timestamptz - {column})) / 86400.0)"
    return f"(julianday(%s) - julianday({column}))"


def sql_now(now: datetime) -> Any:
    """``now`` as the parameter ``days_since_sql`` expects on this database."""
    if connection.vendor == "postgresql":
        return now
    # SQLite stores naive UTC text; julianday() parses this form.
    return now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def trigger_customers(plan: Plan, *, now: datetime, since: datetime | None = None) -> QuerySet:
    """Customers matching the plan's trigger at ``now``, before suppression.

    - stage_entered: with ``since``, customers with a stage-change row into the stage in
      (since, now] who are still in it; without, everyone currently in the stage (the
      launch preview).
    - recency_days / recency_gap: customers whose last engagement action is older than N
      days / k× their own usual gap (``ScoreState.expected_gap_days``, or the engine's
      default gap when the customer has too little history).
    - segment_once: the plan's segment.
    A plan restricted to a segment (always-on with ``segment``) intersects with it.
    """
    params = plan.trigger_params or {}
    kind = plan.trigger_kind
    if kind == TriggerKind.SEGMENT_ONCE:
        if plan.segment is None:
            return Customer.objects.none()
        return segment_customers(plan.segment, now=now)
    if kind == TriggerKind.STAGE_ENTERED:
        stage = params.get("stage")
        qs = Customer.objects.filter(engagement__stage=stage)
        if since is not None:
            # A stage change already answered by an enrollment in this plan does not count
            # twice (the tick looks back a little past its watermark for late commits).
            answered = Enrollment.objects.filter(
                plan_id=plan.pk,
                customer=OuterRef("customer"),
                enrolled_at__gte=OuterRef("changed_at"),
            )
            entered = StageChange.objects.filter(
                customer=OuterRef("pk"), to_stage=stage, changed_at__gt=since, changed_at__lte=now
            ).exclude(Exists(answered))
            qs = qs.filter(Exists(entered))
    elif kind == TriggerKind.RECENCY_DAYS:
        days = float(params.get("days", 30))
        qs = Customer.objects.filter(
            score_state__last_engagement_at__lte=now - timedelta(days=days)
        )
    elif kind == TriggerKind.RECENCY_GAP:
        multiple = float(params.get("multiple", 3))
        default_gap = EngagementSettings.load().default_gap_days
        quiet = RawSQL(
            "SELECT customer_id FROM customers_scorestate WHERE last_engagement_at IS NOT NULL "
            f"AND {days_since_sql('last_engagement_at')} > %s * COALESCE(expected_gap_days, %s)",
            [sql_now(now), multiple, default_gap],
        )
        qs = Customer.objects.filter(pk__in=quiet)
    else:
        return Customer.objects.none()
    if plan.segment_id is not None:
        qs = qs.filter(pk__in=segment_customers(plan.segment, now=now).values("pk"))
    return qs


def suppression_annotate(customers: QuerySet, plan: Plan, *, now: datetime) -> QuerySet:
    """Annotate ``suppressed`` with the first reason (key of SUPPRESSION_REASONS) or ''."""
    active_here = Enrollment.objects.filter(
        customer=OuterRef("pk"), plan=plan, status=Enrollment.Status.ACTIVE
    )
    active_elsewhere = (
        Enrollment.objects.filter(
            customer=OuterRef("pk"),
            status=Enrollment.Status.ACTIVE,
            plan__priority__gte=plan.priority,
        )
        .exclude(plan=plan)
        .exclude(plan__status=Plan.Status.COMPLETED)
    )
    cooling_down = Enrollment.objects.filter(customer=OuterRef("pk"), plan=plan).filter(
        Q(ended_at__gte=now - timedelta(days=plan.cooldown_days))
        | Q(ended_at__isnull=True, enrolled_at__gte=now - timedelta(days=plan.cooldown_days))
    )
    sent_this_week = (
        StepExecution.objects.filter(
            customer=OuterRef("pk"),
            status=StepExecution.Status.SENT,
            action__in=MESSAGE_ACTIONS,
            performed_at__gt=now - WEEK,
        )
        .order_by()
        .values("customer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return customers.alias(
        sent_week=Coalesce(Subquery(sent_this_week, output_field=IntegerField()), 0)
    ).annotate(
        suppressed=Case(
            When(email_opt_out=True, then=Value("opted_out")),
            When(Exists(active_here), then=Value("already_enrolled")),
            When(Exists(active_elsewhere), then=Value("other_plan")),
            When(Exists(cooling_down), then=Value("cooldown")),
            When(sent_week__gte=plan.frequency_cap_per_week, then=Value("frequency_cap")),
            default=Value(""),
            output_field=CharField(),
        )
    )


def eligible_customers(
    plan: Plan, *, now: datetime, since: datetime | None = None, segment: Segment | None = None
) -> QuerySet:
    """Customers the tick enrols now: trigger matched, no suppression reason."""
    if segment is not None and segment.pk != plan.segment_id:
        plan = _with_segment(plan, segment)
    candidates = trigger_customers(plan, now=now, since=since)
    return suppression_annotate(candidates, plan, now=now).filter(suppressed="")


def _with_segment(plan: Plan, segment: Segment) -> Plan:
    copy = Plan(**{f.attname: getattr(plan, f.attname) for f in Plan._meta.concrete_fields})
    copy.segment = segment
    return copy


@dataclass(frozen=True)
class AudienceCustomer:
    id: int
    name: str
    email: str


@dataclass(frozen=True)
class LaunchAudience:
    """Who a launch would enrol now, and who is suppressed and why."""

    matched: int  # customers matching the trigger or segment
    eligible: int  # would be enrolled now
    treatment: int  # of the eligible, in the treatment arm
    control: int  # of the eligible, held out
    split_exact: bool  # False when treatment/control are estimated from the percentage
    suppressed: dict[str, int]  # reason key -> customers (every key of SUPPRESSION_REASONS)
    sample: list[AudienceCustomer] = field(default_factory=list)
    suppressed_sample: dict[str, list[AudienceCustomer]] = field(default_factory=dict)
    always_on: bool = False  # an always-on plan also enrols customers who match later

    @property
    def suppressed_total(self) -> int:
        return sum(self.suppressed.values())

    @property
    def suppressed_rows(self) -> list[tuple[str, str, int]]:
        """(key, label, count) for every reason, in rule order: for a table."""
        return [(key, label, self.suppressed[key]) for key, label in SUPPRESSION_REASONS.items()]


def _sample(qs: QuerySet) -> list[AudienceCustomer]:
    return [
        AudienceCustomer(id=pk, name=name, email=email)
        for pk, name, email in qs.order_by("pk").values_list("pk", "name", "email")[:SAMPLE_SIZE]
    ]


def launch_audience(
    plan: Plan,
    segment: Segment | None = None,
    *,
    holdout_percent: int | None = None,
    now: datetime | None = None,
) -> LaunchAudience:
    """Who launching ``plan`` (on ``segment``, default the plan's) would enrol at ``now``.

    Counts per suppression reason (first matching rule wins), the treatment/control split of
    the eligible customers (exact hash assignment up to 200,000 customers), and samples.
    For an always-on stage trigger the preview is the customers in the stage now.
    """
    now = now or timezone.now()
    if segment is not None and segment.pk != plan.segment_id:
        plan = _with_segment(plan, segment)
    percent = plan.holdout_percent if holdout_percent is None else holdout_percent
    candidates = suppression_annotate(trigger_customers(plan, now=now), plan, now=now)
    by_reason = dict(
        candidates.order_by()
        .values_list("suppressed")
        .annotate(n=Count("pk"))
        .values_list("suppressed", "n")
    )
    eligible = by_reason.pop("", 0)
    suppressed = {key: by_reason.get(key, 0) for key in SUPPRESSION_REASONS}
    matched = eligible + sum(suppressed.values())
    eligible_qs = candidates.filter(suppressed="")
    if eligible <= EXACT_SPLIT_LIMIT:
        ids = list(eligible_qs.order_by().values_list("pk", flat=True))
        control = sum(1 for arm in holdout_arms(plan.pk or 0, ids, percent) if arm == CONTROL)
        exact = True
    else:
        control = round(eligible * percent / 100)
        exact = False
    return LaunchAudience(
        matched=matched,
        eligible=eligible,
        treatment=eligible - control,
        control=control,
        split_exact=exact,
        suppressed=suppressed,
        sample=_sample(eligible_qs),
        suppressed_sample={
            key: _sample(candidates.filter(suppressed=key)) for key, n in suppressed.items() if n
        },
        always_on=plan.is_always_on,
    )


def cs_tasks_for(user: Any, *, status: str | None = CsTask.Status.OPEN) -> QuerySet:
    """The CS tasks plans made for ``user`` (the customers' owner), soonest due first.

    ``status=None`` lists every status. Unassigned tasks (customer without an owner) are in
    ``cs_tasks_unassigned``.
    """
    qs = CsTask.objects.filter(owner=user).select_related("customer", "enrollment__plan")
    if status is not None:
        qs = qs.filter(status=status)
    return qs.order_by("due_at", "id")


def cs_tasks_unassigned(*, status: str | None = CsTask.Status.OPEN) -> QuerySet:
    """CS tasks for customers without an owner (for admins to hand out)."""
    qs = CsTask.objects.filter(owner__isnull=True).select_related("customer", "enrollment__plan")
    if status is not None:
        qs = qs.filter(status=status)
    return qs.order_by("due_at", "id")


def plan_enrollments(plan: Plan, *, arm: str | None = None, status: str | None = None) -> QuerySet:
    """A plan's enrollments, newest first, with the customer loaded."""
    qs = Enrollment.objects.filter(plan=plan).select_related("customer", "reengaged_after_step")
    if arm:
        qs = qs.filter(arm=arm)
    if status:
        qs = qs.filter(status=status)
    return qs


def customer_enrollments(customer: Customer) -> QuerySet:
    """A customer's enrollments (newest first) with their plans and every execution,
    sent or held out — for the customer page."""
    from django.db.models import Prefetch

    return (
        Enrollment.objects.filter(customer=customer)
        .select_related("plan", "reengaged_after_step")
        .prefetch_related(
            Prefetch(
                "executions",
                queryset=StepExecution.objects.select_related("step").order_by("due_at", "id"),
            )
        )
        .order_by("-enrolled_at", "-id")
    )


@dataclass(frozen=True)
class ArmCounts:
    enrolled: int
    active: int
    reengaged: int
    exhausted: int
    exited: int  # opted out, stopped or deleted
    actions_sent: int
    actions_held_out: int
    actions_failed: int

    @property
    def reengaged_rate(self) -> float | None:
        return self.reengaged / self.enrolled if self.enrolled else None


def plan_arm_counts(plan: Plan) -> dict[str, ArmCounts]:
    """Per arm: enrollments by outcome and actions by result (two grouped queries)."""
    enrollments = {
        (arm, status): n
        for arm, status, n in Enrollment.objects.filter(plan=plan)
        .order_by()
        .values_list("arm", "status")
        .annotate(n=Count("pk"))
        .values_list("arm", "status", "n")
    }
    actions = {
        (arm, status): n
        for arm, status, n in StepExecution.objects.filter(plan=plan)
        .order_by()
        .values_list("enrollment__arm", "status")
        .annotate(n=Count("pk"))
        .values_list("enrollment__arm", "status", "n")
    }
    result = {}
    for arm in Enrollment.Arm.values:
        by_status = {s: enrollments.get((arm, s), 0) for s in Enrollment.Status.values}
        result[arm] = ArmCounts(
            enrolled=sum(by_status.values()),
            active=by_status["active"],
            reengaged=by_status["reengaged"],
            exhausted=by_status["exhausted"],
            exited=by_status["opted_out"] + by_status["stopped"] + by_status["deleted"],
            actions_sent=actions.get((arm, "sent"), 0),
            actions_held_out=actions.get((arm, "held_out"), 0),
            actions_failed=actions.get((arm, "failed"), 0),
        )
    return result


def plans_list() -> QuerySet:
    """Plans with their enrollment counts, highest priority first."""
    return Plan.objects.annotate(
        enrolled=Count("enrollments", distinct=True),
    ).order_by("-priority", "id")

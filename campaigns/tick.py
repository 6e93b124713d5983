"""The plan tick: start scheduled plans, close finished enrollments, enrol, create due steps.

One run (``plans_tick``), under a job lock so overlapping beats skip:

1. Scheduled plans whose start has come become active.
2. Exits, before anything is sent, so a customer who came back gets nothing more:
   customer deleted → *deleted*; opted out → *opted_out*; an engagement action after
   enrollment (``ScoreState.last_engagement_at > enrolled_at``) → *reengaged*, counted for
   the last step executed or held out before that action.
3. Enrolment, plans in priority order (highest first): the trigger's customers (stage-change
   rows since the plan's watermark, recency past N days or k× the customer's usual gap, or
   the one-off segment at its start) minus the suppressed (``campaigns.selectors``). A
   customer in a lower-priority plan is moved (that enrollment ends as *stopped*). The arm is
   the deterministic holdout hash. A partial unique index keeps one active enrollment per
   customer even if two ticks raced.
4. Due steps: for every active enrollment whose next step is due, one ``StepExecution`` row
   (``INSERT … SELECT … ON CONFLICT DO NOTHING``, one statement per plan, step and chunk of
   enrollments): *pending* in the treatment arm (dispatch performs it), *held_out* in the
   control arm (recorded, never performed). Then the enrollment moves to the next step.
   Step due times are fixed offsets from enrollment: a step "N days after the previous step"
   is due N days after the previous step's *due* time, so the ladder does not drift with
   dispatch delays.
5. Enrollments whose last step is ``final_wait_days`` old end as *exhausted*; one-off plans
   with no active enrollment left become *completed*.

Set-based SQL throughout: no Python loop over enrollments except the arm hash at enrolment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Subquery
from django.utils import timezone

from campaigns.holdout import holdout_arms
from campaigns.models import ALWAYS_ON_TRIGGERS, DelayBasis, Enrollment, Plan, StepExecution
from campaigns.results import results_refresh_due
from campaigns.selectors import eligible_customers
from campaigns.services import _enrollments_close
from customers.locks import job_lock
from customers.models import ScoreState

CHUNK = 10_000
FINAL_STATUSES = ("sent", "held_out", "suppressed", "failed", "cancelled")
LOCK_NAME = "campaigns.tick"
# Stage-change rows are read from a little before the watermark: a row whose transaction
# committed late is still seen (answered stage changes are not enrolled twice).
TRIGGER_LOOKBACK = timedelta(minutes=10)


@dataclass
class TickResult:
    skipped: bool = False
    activated: int = 0
    enrolled: int = 0
    moved: int = 0
    executions: int = 0
    held_out: int = 0
    closed: dict[str, int] = field(default_factory=dict)
    completed_plans: int = 0
    results_refreshed: int = 0
    seconds: float = 0.0


def step_offsets(plan: Plan) -> list[float]:
    """Days from enrollment to each step (index 0 = position 1), basis applied."""
    offsets: list[float] = []
    for step in plan.steps.order_by("position", "id"):
        previous = offsets[-1] if offsets else 0.0
        base = previous if step.delay_basis == DelayBasis.PREVIOUS_STEP else 0.0
        offsets.append(base + step.delay_days)
    return offsets


def plans_tick(*, now: datetime | None = None, chunk: int = CHUNK) -> TickResult:
    """One tick (module docstring); returns counts. Skips when another tick runs."""
    started = time.monotonic()
    now = now or timezone.now()
    result = TickResult()
    with job_lock(LOCK_NAME, lease=timedelta(minutes=30)) as acquired:
        if not acquired:
            result.skipped = True
            return result
        result.activated = plans_activate_due(now=now)
        result.closed = enrollments_exit_due(now=now)
        for plan in Plan.objects.filter(status=Plan.Status.ACTIVE).order_by("-priority", "id"):
            enrolled, moved = plan_enrol_due(plan, now=now, chunk=chunk)
            result.enrolled += enrolled
            result.moved += moved
        result.executions, result.held_out = executions_create_due(now=now, chunk=chunk)
        result.closed["exhausted"] = enrollments_exhaust_due(now=now)
        result.completed_plans = plans_complete_due(now=now)
        result.results_refreshed = results_refresh_due(now=now)
    result.seconds = time.monotonic() - started
    return result


def plans_activate_due(*, now: datetime) -> int:
    """Scheduled plans whose start time has come become active."""
    return Plan.objects.filter(status=Plan.Status.SCHEDULED, start_at__lte=now).update(
        status=Plan.Status.ACTIVE, updated_at=now
    )


def enrollments_exit_due(*, now: datetime) -> dict[str, int]:
    """Close active enrollments of deleted, opted-out and re-engaged customers (step 2)."""
    active = Enrollment.objects.filter(status=Enrollment.Status.ACTIVE)
    counts = {}
    with transaction.atomic():
        counts["deleted"] = _enrollments_close(
            active.filter(customer__isnull=True),
            status=Enrollment.Status.DELETED,
            reason="customer deleted",
            now=now,
        )
        counts["opted_out"] = _enrollments_close(
            active.filter(customer__email_opt_out=True),
            status=Enrollment.Status.OPTED_OUT,
            reason="customer opted out",
            now=now,
        )
    last_action = ScoreState.objects.filter(customer=OuterRef("customer")).values(
        "last_engagement_at"
    )[:1]
    came_back = ScoreState.objects.filter(
        customer=OuterRef("customer"), last_engagement_at__gt=OuterRef("enrolled_at")
    )
    preceding_step = (
        StepExecution.objects.filter(
            enrollment=OuterRef("pk"),
            status__in=[StepExecution.Status.SENT, StepExecution.Status.HELD_OUT],
            performed_at__lte=Subquery(last_action),
        )
        .order_by("-performed_at", "-id")
        .values("step_id")[:1]
    )
    reengaged = 0
    while True:
        with transaction.atomic():
            ids = list(
                active.filter(Exists(came_back)).order_by("pk").values_list("pk", flat=True)[:CHUNK]
            )
            if not ids:
                break
            reengaged += Enrollment.objects.filter(
                pk__in=ids, status=Enrollment.Status.ACTIVE
            ).update(
                status=Enrollment.Status.REENGAGED,
                ended_at=now,
                reengaged_at=Subquery(last_action),
                reengaged_after_step_id=Subquery(preceding_step),
                next_step_at=None,
                exit_reason="engagement action after enrollment",
            )
            StepExecution.objects.filter(
                enrollment_id__in=ids, status=StepExecution.Status.PENDING
            ).update(status=StepExecution.Status.CANCELLED, error="customer re-engaged")
    counts["reengaged"] = reengaged
    return counts


def plan_enrol_due(plan: Plan, *, now: datetime, chunk: int = CHUNK) -> tuple[int, int]:
    """Enrol the plan's due, unsuppressed customers (step 3); returns (enrolled, moved)."""
    if plan.start_at and plan.start_at > now:
        return 0, 0
    offsets = step_offsets(plan)
    if not offsets:
        return 0, 0
    if plan.trigger_kind in ALWAYS_ON_TRIGGERS:
        since = plan.trigger_watermark or plan.start_at or plan.launched_at or now
        since = since - TRIGGER_LOOKBACK if plan.trigger_watermark else since
    elif plan.trigger_watermark is not None:
        return 0, 0  # a one-off plan enrols once
    else:
        since = None
    candidates = eligible_customers(plan, now=now, since=since)
    rows = list(
        candidates.order_by("pk").values_list(
            "pk", "engagement__stage", "score_state__last_engagement_at"
        )
    )
    enrolled = moved = 0
    first_due = now + timedelta(days=offsets[0])
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        ids = [row[0] for row in part]
        arms = holdout_arms(plan.pk, ids, plan.holdout_percent)
        with transaction.atomic():
            # Customers in a lower-priority plan move to this one.
            moved += _enrollments_close(
                Enrollment.objects.filter(customer_id__in=ids, status=Enrollment.Status.ACTIVE)
                .exclude(plan=plan)
                .filter(plan__priority__lt=plan.priority),
                status=Enrollment.Status.STOPPED,
                reason=f"moved to higher-priority plan {plan.name}",
                now=now,
            )
            Enrollment.objects.bulk_create(
                [
                    Enrollment(
                        plan=plan,
                        customer_id=customer_id,
                        arm=arm,
                        segment_id=plan.segment_id,
                        enrolled_at=now,
                        stage_at_enrollment=stage or "",
                        last_engagement_at_enrollment=last,
                        days_since_last_action_at_first_step=(
                            (first_due - last).total_seconds() / 86400 if last else None
                        ),
                        next_step_at=first_due,
                    )
                    for (customer_id, stage, last), arm in zip(part, arms, strict=True)
                ],
                # The one-active-enrollment index turns a racing duplicate into a no-op.
                ignore_conflicts=True,
            )
    if rows:
        # bulk_create(ignore_conflicts=True) returns every object, inserted or not: count.
        enrolled = Enrollment.objects.filter(plan=plan, enrolled_at=now).count()
    Plan.objects.filter(pk=plan.pk).update(trigger_watermark=now)
    return enrolled, moved


def _adapt(value: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(value)


def executions_create_due(*, now: datetime, chunk: int = CHUNK) -> tuple[int, int]:
    """One execution row per due step of every active enrollment (step 4).

    Returns (rows created, of which held out). One INSERT … SELECT and one UPDATE per plan,
    step position and chunk of enrollment ids.
    """
    created = held_out = 0
    prefix = getattr(settings, "CAMPAIGNS_KEY_PREFIX", "lc")
    insert_sql = """
        INSERT INTO campaigns_stepexecution
            (enrollment_id, step_id, plan_id, customer_id, action, status, due_at, attempts,
             next_attempt_at, claimed_by, idempotency_key, performed_at, result, error,
             created_at)
        SELECT e.id, %s, e.plan_id, e.customer_id, %s,
               CASE WHEN e.arm = 'control' THEN 'held_out' ELSE 'pending' END,
               e.next_step_at, 0, e.next_step_at, '',
               CAST(%s AS TEXT) || CAST(e.id AS TEXT),
               CASE WHEN e.arm = 'control' THEN %s ELSE NULL END,
               '{}', '', %s
        FROM campaigns_enrollment e
        WHERE e.plan_id = %s AND e.status = 'active' AND e.steps_done = %s
          AND e.next_step_at <= %s AND e.id BETWEEN %s AND %s
          AND NOT EXISTS (SELECT 1 FROM campaigns_stepexecution q
                          WHERE q.enrollment_id = e.id AND q.status NOT IN ({done}))
        ON CONFLICT DO NOTHING
    """
    # A step waits until the enrollment's previous row is finished (sent, failed, ...): a
    # coupon is recorded before the email that shows it. "Not finished" is spelled NOT IN the
    # final states so the planner probes the enrollment's few rows, not the due-row index.
    insert_sql = insert_sql.replace("{done}", ", ".join(f"'{s}'" for s in FINAL_STATUSES))
    for plan in Plan.objects.filter(status=Plan.Status.ACTIVE):
        steps = list(plan.steps.order_by("position", "id"))
        offsets = step_offsets(plan)
        # Last step first: an enrollment moved on by this tick is not moved again by it, so
        # a plan that fell behind catches up one step per tick instead of all at once.
        for index, step in reversed(list(enumerate(steps))):
            due = Enrollment.objects.filter(
                plan=plan,
                status=Enrollment.Status.ACTIVE,
                steps_done=index,
                next_step_at__lte=now,
            )
            following = (
                F("enrolled_at") + timedelta(days=offsets[index + 1])
                if index + 1 < len(steps)
                else None
            )
            last_id = 0
            while True:
                ids = list(
                    due.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:chunk]
                )
                if not ids:
                    break
                low, high = ids[0], ids[-1]
                last_id = high
                key_prefix = f"{prefix}{plan.pk}.{step.pk}."
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(
                        insert_sql,
                        [
                            step.pk,
                            step.action,
                            key_prefix,
                            _adapt(now),
                            _adapt(now),
                            plan.pk,
                            index,
                            _adapt(now),
                            low,
                            high,
                        ],
                    )
                    created += max(cursor.rowcount, 0)
                    due.filter(pk__gte=low, pk__lte=high).filter(
                        Exists(StepExecution.objects.filter(enrollment=OuterRef("pk"), step=step))
                    ).update(
                        steps_done=index + 1,
                        last_step_at=F("next_step_at"),
                        next_step_at=following,
                    )
    if created > 10_000 and connection.vendor == "postgresql":
        # Fresh statistics for dispatch's claim query after a large batch of new rows.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE campaigns_stepexecution")
    if created:
        held_out = StepExecution.objects.filter(
            status=StepExecution.Status.HELD_OUT, created_at=now
        ).count()
    return created, held_out


def enrollments_exhaust_due(*, now: datetime) -> int:
    """Enrollments past their last step by the plan's final wait end as exhausted (step 5)."""
    exhausted = 0
    for plan in Plan.objects.exclude(status=Plan.Status.DRAFT):
        n_steps = plan.steps.count()
        with transaction.atomic():
            exhausted += _enrollments_close(
                Enrollment.objects.filter(
                    plan=plan,
                    steps_done__gte=n_steps,
                    last_step_at__lte=now - timedelta(days=plan.final_wait_days),
                ),
                status=Enrollment.Status.EXHAUSTED,
                reason="all steps done",
                now=now,
            )
    return exhausted


def plans_complete_due(*, now: datetime) -> int:
    """One-off plans that enrolled and have no active enrollment left become completed."""
    done = (
        Plan.objects.filter(status=Plan.Status.ACTIVE, trigger_watermark__isnull=False)
        .exclude(trigger_kind__in=ALWAYS_ON_TRIGGERS)
        .exclude(Exists(Enrollment.objects.filter(plan=OuterRef("pk"), status="active")))
    )
    return done.update(status=Plan.Status.COMPLETED, completed_at=now, updated_at=now)

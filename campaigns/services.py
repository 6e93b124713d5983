"""Writing plans: create, edit, steps, launch, pause, resume, stop; stopping an enrollment.

Every function checks the user's role (only marketers and admins change plans; ``PlanError``
subclasses ``PermissionDenied`` for that case) and leaves audit rows in ``audit`` (the same
table the settings page lists: ``what`` = "plan <id> <name>"). Edits are all-or-nothing.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.models import SettingsChange
from audit.services import settings_changes_record
from campaigns.models import (
    ActionKind,
    DelayBasis,
    Enrollment,
    Plan,
    PlanStep,
    StepExecution,
    TriggerKind,
    validate_step_config,
    validate_trigger,
)
from customers.roles import Role, has_role
from segments.models import Segment

PLAN_FIELDS = [
    "name",
    "description",
    "trigger_kind",
    "trigger_params",
    "segment",
    "start_at",
    "holdout_percent",
    "priority",
    "frequency_cap_per_week",
    "cooldown_days",
    "final_wait_days",
]
OPEN_EXECUTIONS = [StepExecution.Status.PENDING, StepExecution.Status.SENDING]


class PlanError(ValidationError):
    """A plan change that is not allowed in the plan's current state (message says why)."""


def _require_marketer(user: Any) -> None:
    if not has_role(user, Role.MARKETER, Role.ADMIN):
        raise PermissionDenied("Only marketers and admins can change re-engagement plans.")


def _what(plan: Plan) -> str:
    return f"plan {plan.pk} {plan.name}"[:100]


def _audit(plan: Plan, user: Any, field: str, old: Any, new: Any) -> None:
    SettingsChange.objects.create(
        user=user if getattr(user, "pk", None) else None,
        what=_what(plan),
        field=field[:64],
        old=("" if old is None else str(old))[:255],
        new=("" if new is None else str(new))[:255],
    )


def _validate_plan(plan: Plan) -> None:
    plan.full_clean(exclude=["created_by", "launched_by"])
    validate_trigger(plan.trigger_kind, plan.trigger_params, plan.segment_id)


def plan_create(*, user: Any, name: str, **fields: Any) -> Plan:
    """Create a draft plan. ``fields`` are any of PLAN_FIELDS except name (model defaults
    otherwise: stage_entered trigger needs ``trigger_params={"stage": ...}``)."""
    _require_marketer(user)
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown plan fields: {', '.join(sorted(unknown))}.")
    plan = Plan(name=name, created_by=user if getattr(user, "pk", None) else None, **fields)
    _validate_plan(plan)
    with transaction.atomic():
        plan.save()
        _audit(plan, user, "created", "", plan.get_trigger_kind_display())
    return plan


def plan_update(*, plan: Plan, user: Any, **fields: Any) -> Plan:
    """Change plan fields (any of PLAN_FIELDS); each changed field is audited.

    Trigger, segment and holdout cannot change once customers are enrolled in an active
    plan (that would mix two experiments in one result); pause it first and they still
    cannot: make a new plan instead.
    """
    _require_marketer(user)
    unknown = set(fields) - set(PLAN_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown plan fields: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        if locked.status == Plan.Status.COMPLETED:
            raise PlanError("A completed plan cannot be edited.")
        frozen = {"trigger_kind", "trigger_params", "segment", "holdout_percent"}
        has_enrollments = locked.enrollments.exists()
        before = copy.copy(locked)
        for name, value in fields.items():
            setattr(locked, name, value)
        changed_frozen = [
            name
            for name in frozen & set(fields)
            if getattr(before, name if name != "segment" else "segment_id")
            != getattr(locked, name if name != "segment" else "segment_id")
        ]
        if has_enrollments and changed_frozen:
            raise PlanError(
                f"Cannot change {', '.join(sorted(changed_frozen))} after customers were "
                "enrolled: results would mix two experiments. Copy the plan instead."
            )
        _validate_plan(locked)
        locked.save()
        settings_changes_record(
            before=before,
            after=locked,
            fields=[f for f in PLAN_FIELDS if f in fields],
            what=_what(locked),
            user=user if getattr(user, "pk", None) else None,
        )
    plan.refresh_from_db()
    return plan


def _require_editable_steps(plan: Plan) -> None:
    if not plan.is_editable:
        raise PlanError(
            f"Steps of a {plan.get_status_display().lower()} plan cannot change; pause it first."
        )


def step_add(
    *,
    plan: Plan,
    user: Any,
    action: str,
    config: dict,
    delay_days: float = 0,
    delay_basis: str = DelayBasis.ENROLLMENT,
    position: int | None = None,
) -> PlanStep:
    """Add a step (at the end, or at ``position`` shifting later steps down).

    ``config`` is validated per action (see ``campaigns.models.validate_step_config``);
    errors name the field.
    """
    _require_marketer(user)
    if action not in ActionKind.values:
        raise ValidationError({"action": f"Unknown action {action!r}."})
    if delay_basis not in DelayBasis.values:
        raise ValidationError({"delay_basis": f"One of {DelayBasis.values}."})
    if delay_days is None or delay_days < 0:
        raise ValidationError({"delay_days": "The delay cannot be negative."})
    cleaned = validate_step_config(action, config)
    with transaction.atomic():
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        _require_editable_steps(locked)
        steps = list(locked.steps.order_by("position", "id"))
        at = len(steps) + 1 if position is None else max(1, min(position, len(steps) + 1))
        for step in steps:
            if step.position >= at:
                step.position += 1
        PlanStep.objects.bulk_update(steps, ["position"])
        step = PlanStep.objects.create(
            plan=locked,
            position=at,
            action=action,
            config=cleaned,
            delay_days=float(delay_days),
            delay_basis=delay_basis,
        )
        _audit(locked, user, f"step {at} added", "", f"{action} after {delay_days:g} days")
    return step


def step_update(
    *,
    step: PlanStep,
    user: Any,
    config: dict | None = None,
    delay_days: float | None = None,
    delay_basis: str | None = None,
) -> PlanStep:
    """Change a step's config or delay (the action kind stays; remove and add to change it)."""
    _require_marketer(user)
    with transaction.atomic():
        plan = Plan.objects.select_for_update().get(pk=step.plan_id)
        _require_editable_steps(plan)
        before = PlanStep.objects.get(pk=step.pk)
        if config is not None:
            step.config = validate_step_config(step.action, config)
        if delay_days is not None:
            if delay_days < 0:
                raise ValidationError({"delay_days": "The delay cannot be negative."})
            step.delay_days = float(delay_days)
        if delay_basis is not None:
            if delay_basis not in DelayBasis.values:
                raise ValidationError({"delay_basis": f"One of {DelayBasis.values}."})
            step.delay_basis = delay_basis
        step.save()
        settings_changes_record(
            before=before,
            after=step,
            fields=["config", "delay_days", "delay_basis"],
            what=_what(plan),
            user=user if getattr(user, "pk", None) else None,
        )
    return step


def step_remove(*, step: PlanStep, user: Any) -> None:
    """Remove a step and close the gap in positions. A step that already ran for some
    customer stays (its executions are the plan's history): the plan must be copied."""
    _require_marketer(user)
    with transaction.atomic():
        plan = Plan.objects.select_for_update().get(pk=step.plan_id)
        _require_editable_steps(plan)
        if StepExecution.objects.filter(step=step).exists():
            raise PlanError("This step already ran for some customers; it cannot be removed.")
        position = step.position
        step.delete()
        _steps_renumber(plan)
        _audit(plan, user, f"step {position} removed", step.get_action_display(), "")


def _steps_renumber(plan: Plan, order: list[int] | None = None) -> None:
    steps = list(plan.steps.order_by("position", "id"))
    if order is not None:
        by_id = {s.pk: s for s in steps}
        steps = [by_id[pk] for pk in order]
    for number, step in enumerate(steps, start=1):
        step.position = number
    PlanStep.objects.bulk_update(steps, ["position"])


def steps_reorder(*, plan: Plan, user: Any, step_ids: list[int]) -> list[PlanStep]:
    """Put the plan's steps in the order of ``step_ids`` (every step id exactly once)."""
    _require_marketer(user)
    with transaction.atomic():
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        _require_editable_steps(locked)
        current = list(locked.steps.order_by("position", "id").values_list("pk", flat=True))
        if sorted(current) != sorted(step_ids) or len(set(step_ids)) != len(step_ids):
            raise ValidationError("Give every step of the plan exactly once to reorder.")
        if locked.enrollments.exists() and current != list(step_ids):
            raise PlanError("Customers are already enrolled: the order of steps cannot change.")
        _steps_renumber(locked, list(step_ids))
        _audit(locked, user, "steps reordered", current, list(step_ids))
    return list(locked.steps.order_by("position"))


def _set_status(plan: Plan, user: Any, status: str, **extra: Any) -> Plan:
    old = plan.status
    plan.status = status
    for name, value in extra.items():
        setattr(plan, name, value)
    plan.save(update_fields=["status", "updated_at", *extra])
    _audit(plan, user, "status", old, status)
    return plan


def plan_launch(
    plan: Plan,
    user: Any,
    segment: Segment | None = None,
    start_at: datetime | None = None,
    holdout_percent: int | None = None,
    *,
    now: datetime | None = None,
) -> Plan:
    """Launch a draft plan: it becomes *scheduled* (start in the future) or *active*.

    ``segment``, ``start_at`` and ``holdout_percent`` override the plan's values (audited).
    The tick enrols customers from then on: a one-off plan enrols its segment once at
    ``start_at``; an always-on plan enrols whoever matches the trigger after the start.
    """
    _require_marketer(user)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        if locked.status != Plan.Status.DRAFT:
            raise PlanError(
                f"Only a draft plan can be launched; this one is {locked.get_status_display()}."
            )
        if not locked.steps.exists():
            raise PlanError("Add at least one step before launching.")
        before = copy.copy(locked)
        if segment is not None:
            locked.segment = segment
        if start_at is not None:
            locked.start_at = start_at
        if holdout_percent is not None:
            locked.holdout_percent = holdout_percent
        if locked.start_at is None or locked.start_at < now:
            locked.start_at = now
        if locked.trigger_kind == TriggerKind.SEGMENT_ONCE and locked.segment is None:
            raise ValidationError({"segment": "Choose the segment to launch on."})
        _validate_plan(locked)
        # Always-on: stage changes before the start are history, not triggers.
        locked.trigger_watermark = None
        settings_changes_record(
            before=before,
            after=locked,
            fields=["segment", "start_at", "holdout_percent"],
            what=_what(locked),
            user=user if getattr(user, "pk", None) else None,
        )
        status = Plan.Status.SCHEDULED if locked.start_at > now else Plan.Status.ACTIVE
        locked.save()
        _set_status(
            locked,
            user,
            status,
            launched_at=now,
            launched_by=user if getattr(user, "pk", None) else None,
        )
    plan.refresh_from_db()
    return plan


def plan_pause(plan: Plan, user: Any) -> Plan:
    """Pause a scheduled or active plan: no enrollments, no new step executions, and
    pending executions wait (dispatch skips rows of paused plans) until resumed."""
    _require_marketer(user)
    with transaction.atomic():
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        if locked.status not in (Plan.Status.ACTIVE, Plan.Status.SCHEDULED):
            raise PlanError(f"A {locked.get_status_display().lower()} plan cannot be paused.")
        _set_status(locked, user, Plan.Status.PAUSED, paused_at=timezone.now())
    plan.refresh_from_db()
    return plan


def plan_resume(plan: Plan, user: Any, *, now: datetime | None = None) -> Plan:
    """Resume a paused plan (scheduled again if its start is still ahead, else active)."""
    _require_marketer(user)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        if locked.status != Plan.Status.PAUSED:
            raise PlanError("Only a paused plan can be resumed.")
        if locked.launched_at is None:
            raise PlanError("This plan was never launched; launch it instead.")
        status = (
            Plan.Status.SCHEDULED
            if locked.start_at and locked.start_at > now
            else Plan.Status.ACTIVE
        )
        _set_status(locked, user, status, paused_at=None)
    plan.refresh_from_db()
    return plan


def _enrollments_close(
    enrollments, *, status: str, reason: str, now: datetime, user: Any = None
) -> int:
    """End active enrollments and cancel their open executions (callers hold a transaction)."""
    ids = list(enrollments.filter(status=Enrollment.Status.ACTIVE).values_list("pk", flat=True))
    if not ids:
        return 0
    closed = Enrollment.objects.filter(pk__in=ids, status=Enrollment.Status.ACTIVE).update(
        status=status,
        ended_at=now,
        next_step_at=None,
        exit_reason=reason[:255],
        stopped_by=user if getattr(user, "pk", None) else None,
    )
    # Only unclaimed rows: a row a worker is sending right now finishes and is recorded.
    StepExecution.objects.filter(enrollment_id__in=ids, status=StepExecution.Status.PENDING).update(
        status=StepExecution.Status.CANCELLED, error=reason[:255]
    )
    return closed


def plan_stop(plan: Plan, user: Any, *, now: datetime | None = None) -> Plan:
    """Complete a plan now: active enrollments end as *stopped*, unsent actions are cancelled."""
    _require_marketer(user)
    now = now or timezone.now()
    with transaction.atomic():
        locked = Plan.objects.select_for_update().get(pk=plan.pk)
        if locked.status == Plan.Status.COMPLETED:
            raise PlanError("This plan is already completed.")
        stopped = _enrollments_close(
            locked.enrollments.all(),
            status=Enrollment.Status.STOPPED,
            reason="plan stopped",
            now=now,
            user=user,
        )
        _set_status(locked, user, Plan.Status.COMPLETED, completed_at=now)
        _audit(locked, user, "enrollments stopped", "", stopped)
    plan.refresh_from_db()
    return plan


def enrollment_stop(enrollment: Enrollment, user: Any, *, reason: str = "") -> Enrollment:
    """Manually end one active enrollment (status *stopped*); its unsent actions are cancelled.

    Marketers, admins and customer success (who may stop a plan for an account they work)."""
    if not has_role(user, Role.MARKETER, Role.ADMIN, Role.CUSTOMER_SUCCESS):
        raise PermissionDenied("Your role cannot stop enrollments.")
    with transaction.atomic():
        if enrollment.status != Enrollment.Status.ACTIVE:
            raise PlanError(f"This enrollment already ended ({enrollment.get_status_display()}).")
        stopped = _enrollments_close(
            Enrollment.objects.filter(pk=enrollment.pk),
            status=Enrollment.Status.STOPPED,
            reason=reason or f"stopped by {getattr(user, 'username', 'staff')}",
            now=timezone.now(),
            user=user,
        )
        if not stopped:
            raise PlanError("This enrollment already ended.")
        _audit(
            enrollment.plan,
            user,
            "enrollment stopped",
            f"customer {enrollment.customer_id}",
            reason or "manual",
        )
    enrollment.refresh_from_db()
    return enrollment


def cs_task_complete(task: Any, user: Any) -> Any:
    """Mark a CS task done (its owner, customer success or admins)."""
    from campaigns.models import CsTask

    if not has_role(user, Role.CUSTOMER_SUCCESS, Role.ADMIN, Role.MARKETER):
        raise PermissionDenied("Your role cannot work customer-success tasks.")
    CsTask.objects.filter(pk=task.pk, status=CsTask.Status.OPEN).update(
        status=CsTask.Status.DONE, done_at=timezone.now(), done_by=user
    )
    task.refresh_from_db()
    return task


def survey_answer_record(*, invitation: Any, rating: int | None, answer: str) -> Any:
    """Record a survey answer once: the invitation's answer and a ``survey_response``
    touchpoint (marks the customer dirty for the engine like every ingest path).

    Returns the touchpoint, or None when the invitation was already answered.
    """
    from campaigns.models import SurveyInvitation
    from customers.engagement import touchpoint_add
    from customers.models import TouchpointType

    with transaction.atomic():
        locked = SurveyInvitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.answered_at is not None or locked.customer_id is None:
            return None
        now = timezone.now()
        touchpoint = touchpoint_add(
            customer=locked.customer,
            type=TouchpointType.objects.get(key="survey_response"),
            occurred_at=now,
            source="survey",
            idempotency_key=f"survey-{locked.pk}",
            properties={
                "rating": rating,
                "answer": answer[:1000],
                "plan_id": locked.enrollment.plan_id,
                "question": locked.question,
            },
        )
        locked.answered_at = now
        locked.rating = rating
        locked.answer = answer
        locked.touchpoint = touchpoint
        locked.save(update_fields=["answered_at", "rating", "answer", "touchpoint"])
    return touchpoint

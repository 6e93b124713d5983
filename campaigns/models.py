"""Re-engagement plans, their steps, enrollments and the action outbox.

- ``Plan``: a trigger (always-on: entered a stage, recency past N days or past k× the
  customer's own usual gap; one-off: a saved segment at a chosen time), a holdout percentage,
  a priority, a weekly frequency cap, a re-entry cool-down and a status
  draft → scheduled → active → paused → completed.
- ``PlanStep``: one rung of the escalation ladder: a delay (from enrollment or from the
  previous step) and an action (email, coupon, CS task, survey invitation, webhook) with a
  config validated by ``validate_step_config``.
- ``Enrollment``: one customer in one plan, in the treatment or the control arm. A partial
  unique index allows at most one *active* enrollment per customer: "one plan at a time"
  holds even when two ticks race.
- ``StepExecution``: the outbox. Unique per (enrollment, step), so a step runs at most once
  per enrollment; dispatch claims rows with ``SKIP LOCKED`` and a lease (see
  docs/campaigns.md for the exactly-once design).
- ``Coupon``, ``CsTask``, ``SurveyInvitation``: what the coupon, CS-task and survey actions
  produce.
"""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.template import Template, TemplateSyntaxError

from customers.models import Customer, Stage, Touchpoint


class TriggerKind(models.TextChoices):
    STAGE_ENTERED = "stage_entered", "Enters a stage"
    RECENCY_DAYS = "recency_days", "No engagement action for N days"
    RECENCY_GAP = "recency_gap", "No engagement action for k× their usual gap"
    SEGMENT_ONCE = "segment_once", "One-off launch on a saved segment"


ALWAYS_ON_TRIGGERS = frozenset(
    {TriggerKind.STAGE_ENTERED, TriggerKind.RECENCY_DAYS, TriggerKind.RECENCY_GAP}
)


class Plan(models.Model):
    """A re-engagement plan: who enters (trigger), what happens (steps), who is held out."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    trigger_kind = models.CharField(
        max_length=16, choices=TriggerKind.choices, default=TriggerKind.STAGE_ENTERED
    )
    trigger_params = models.JSONField(
        default=dict,
        blank=True,
        help_text='stage_entered: {"stage": "cooling"}; recency_days: {"days": 30}; '
        'recency_gap: {"multiple": 3}; segment_once: {} (uses the segment).',
    )
    segment = models.ForeignKey(
        "segments.Segment",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="plans",
        help_text="One-off: the customers to enrol. Always-on: optional restriction.",
    )
    start_at = models.DateTimeField(
        null=True, blank=True, help_text="When the plan starts enrolling (default: at launch)."
    )
    holdout_percent = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(90)],
        help_text="Share of enrolled customers held out as a control group (0–90).",
    )
    priority = models.IntegerField(
        default=100,
        help_text="When a customer qualifies for several plans, the highest priority wins.",
    )
    frequency_cap_per_week = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="At most this many actions to one customer in any 7 days, across plans.",
    )
    cooldown_days = models.PositiveIntegerField(
        default=30, help_text="A customer re-enters this plan only this long after leaving it."
    )
    final_wait_days = models.PositiveIntegerField(
        default=14,
        help_text="After the last step, the enrollment stays open this long so a comeback is "
        "still counted as re-engaged; then it ends as exhausted.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # Stage-change rows up to this time have been turned into enrollments (always-on).
    trigger_watermark = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="campaign_plans",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    launched_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    paused_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [models.Index(fields=["status", "-priority"], name="plan_status_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_always_on(self) -> bool:
        return self.trigger_kind in ALWAYS_ON_TRIGGERS

    @property
    def is_editable(self) -> bool:
        """Steps and trigger may change only before launch or while paused."""
        return self.status in (self.Status.DRAFT, self.Status.SCHEDULED, self.Status.PAUSED)

    def clean(self) -> None:
        validate_trigger(self.trigger_kind, self.trigger_params, self.segment_id)


class ActionKind(models.TextChoices):
    EMAIL = "email", "Email"
    COUPON = "coupon", "Coupon"
    CS_TASK = "cs_task", "Customer-success task"
    SURVEY = "survey", "Survey invitation"
    WEBHOOK = "webhook", "Webhook"


class DelayBasis(models.TextChoices):
    ENROLLMENT = "enrollment", "after enrollment"
    PREVIOUS_STEP = "previous_step", "after the previous step"


class PlanStep(models.Model):
    """One rung of a plan's ladder: wait ``delay_days`` then perform ``action``."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(help_text="1-based order in the plan.")
    delay_days = models.FloatField(default=0, validators=[MinValueValidator(0)])
    delay_basis = models.CharField(
        max_length=16, choices=DelayBasis.choices, default=DelayBasis.ENROLLMENT
    )
    action = models.CharField(max_length=16, choices=ActionKind.choices)
    config = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["plan", "position", "id"]
        indexes = [models.Index(fields=["plan", "position"], name="planstep_plan_pos_idx")]

    def __str__(self) -> str:
        return f"{self.plan_id} step {self.position}: {self.get_action_display()}"

    def clean(self) -> None:
        self.config = validate_step_config(self.action, self.config)


class Enrollment(models.Model):
    """One customer in one plan; the arm is a deterministic hash (see campaigns.holdout)."""

    class Arm(models.TextChoices):
        TREATMENT = "treatment", "Treatment"
        CONTROL = "control", "Control (held out)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REENGAGED = "reengaged", "Re-engaged"
        EXHAUSTED = "exhausted", "Exhausted (all steps done)"
        OPTED_OUT = "opted_out", "Opted out"
        STOPPED = "stopped", "Stopped"
        DELETED = "deleted", "Customer deleted"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="enrollments")
    # SET_NULL: a deleted customer's enrollment stays for the plan's results (status deleted).
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.SET_NULL, related_name="enrollments"
    )
    arm = models.CharField(max_length=16, choices=Arm.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    segment = models.ForeignKey(
        "segments.Segment",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The segment the customer was enrolled from (one-off launches).",
    )
    enrolled_at = models.DateTimeField()
    # Engagement state at enrollment, kept for results and the best-moment chart.
    stage_at_enrollment = models.CharField(max_length=16, choices=Stage.choices, blank=True)
    last_engagement_at_enrollment = models.DateTimeField(null=True, blank=True)
    days_since_last_action_at_first_step = models.FloatField(null=True, blank=True)
    # Progress through the ladder: the position of the last step whose execution exists,
    # and when the next one is due (NULL when no step is left).
    steps_done = models.PositiveIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True)
    last_step_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    reengaged_at = models.DateTimeField(null=True, blank=True)
    reengaged_after_step = models.ForeignKey(
        PlanStep,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The last step executed (or held out) before the customer came back.",
    )
    exit_reason = models.CharField(max_length=255, blank=True)
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-enrolled_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status="active"),
                name="enrollment_one_active_per_customer",
            ),
        ]
        indexes = [
            models.Index(fields=["plan", "status"], name="enrollment_plan_status_idx"),
            models.Index(fields=["plan", "arm", "status"], name="enrollment_plan_arm_idx"),
            models.Index(fields=["customer", "-enrolled_at"], name="enrollment_customer_idx"),
            models.Index(
                fields=["next_step_at"],
                condition=Q(status="active"),
                name="enrollment_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in plan {self.plan_id} ({self.arm}, {self.status})"


class StepExecution(models.Model):
    """The outbox row of one step for one enrollment: performed at most once.

    ``idempotency_key`` is derived from (enrollment, step) and never changes: it is the
    webhook's ``Idempotency-Key`` header and the email's Message-ID on every attempt.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending (claimed)"
        SENT = "sent", "Sent"
        HELD_OUT = "held_out", "Held out (control)"
        SUPPRESSED = "suppressed", "Suppressed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="executions")
    step = models.ForeignKey(PlanStep, on_delete=models.PROTECT, related_name="executions")
    # Denormalized for the frequency cap and per-plan counts without joins.
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="executions")
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.SET_NULL, related_name="step_executions"
    )
    action = models.CharField(max_length=16, choices=ActionKind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    due_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=128, blank=True)
    idempotency_key = models.CharField(max_length=64, unique=True)
    performed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "step"], name="stepexecution_once_per_enrollment"
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "sending"]),
                name="stepexecution_due_idx",
            ),
            models.Index(fields=["customer", "performed_at"], name="stepexecution_cust_idx"),
            models.Index(fields=["plan", "status"], name="stepexecution_plan_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} for enrollment {self.enrollment_id} ({self.status})"


def coupon_code() -> str:
    # 10 characters from an alphabet without look-alikes (0/O, 1/I): ~2^50 codes.
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "".join(secrets.choice(alphabet) for _ in range(10))


class Coupon(models.Model):
    """A unique code made by a coupon step; the next email of the enrollment shows it."""

    class Kind(models.TextChoices):
        PERCENT = "percent", "Percent off"
        AMOUNT = "amount", "Amount off"

    code = models.CharField(max_length=32, unique=True)
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.SET_NULL, related_name="coupons"
    )
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="coupons")
    execution = models.OneToOneField(StepExecution, on_delete=models.CASCADE, related_name="coupon")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERCENT)
    value = models.DecimalField(max_digits=10, decimal_places=2)
    # What one redemption costs us, for ROI (an amount coupon costs its value).
    cost = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.code

    @property
    def display_value(self) -> str:
        if self.kind == self.Kind.PERCENT:
            return f"{self.value.normalize():f}% off"
        return f"{self.value:.2f} off"


class CsTask(models.Model):
    """A customer-success task made by a plan step, for the customer's owner."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.SET_NULL, related_name="cs_tasks"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="cs_tasks",
        help_text="The customer's owner when the task was made; unassigned when none.",
    )
    enrollment = models.ForeignKey(Enrollment, on_delete=models.CASCADE, related_name="cs_tasks")
    execution = models.OneToOneField(
        StepExecution, on_delete=models.CASCADE, related_name="cs_task"
    )
    title = models.CharField(max_length=200)
    note = models.TextField(blank=True)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [models.Index(fields=["owner", "status", "due_at"], name="cstask_owner_idx")]

    def __str__(self) -> str:
        return self.title


def survey_token() -> str:
    return secrets.token_urlsafe(24)


class SurveyInvitation(models.Model):
    """A survey link sent by a plan step; the answer is recorded as a touchpoint."""

    token = models.CharField(max_length=64, unique=True, default=survey_token)
    customer = models.ForeignKey(
        Customer, null=True, on_delete=models.SET_NULL, related_name="survey_invitations"
    )
    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="survey_invitations"
    )
    execution = models.OneToOneField(
        StepExecution, on_delete=models.CASCADE, related_name="survey_invitation"
    )
    question = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    rating = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(10)]
    )
    answer = models.TextField(blank=True, max_length=4000)
    touchpoint = models.OneToOneField(
        Touchpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"survey {self.pk} for {self.customer_id}"


# ---------------------------------------------------------------------------------------------
# Validation of the JSON parts (shared by forms, services and the API)


def validate_trigger(kind: str, params: Any, segment_id: int | None) -> None:
    """Raise ValidationError unless ``params`` suit the trigger ``kind``."""
    if not isinstance(params, dict):
        raise ValidationError({"trigger_params": "Trigger parameters must be an object."})
    if kind == TriggerKind.STAGE_ENTERED:
        if params.get("stage") not in Stage.values:
            raise ValidationError(
                {"trigger_params": f"Choose the stage to react to: one of {Stage.values}."}
            )
    elif kind == TriggerKind.RECENCY_DAYS:
        days = params.get("days")
        if not isinstance(days, int | float) or isinstance(days, bool) or not 1 <= days <= 3650:
            raise ValidationError(
                {"trigger_params": "Recency trigger needs 'days' between 1 and 3650."}
            )
    elif kind == TriggerKind.RECENCY_GAP:
        multiple = params.get("multiple")
        if (
            not isinstance(multiple, int | float)
            or isinstance(multiple, bool)
            or not 1 <= multiple <= 100
        ):
            raise ValidationError(
                {"trigger_params": "Usual-gap trigger needs 'multiple' between 1 and 100."}
            )
    elif kind == TriggerKind.SEGMENT_ONCE:
        if segment_id is None:
            raise ValidationError({"segment": "A one-off launch needs a saved segment."})
    else:
        raise ValidationError({"trigger_kind": f"Unknown trigger {kind!r}."})


def _text(config: dict, name: str, *, required: bool, max_length: int) -> str:
    value = config.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ValidationError({name: "Must be text."})
    value = value.strip()
    if required and not value:
        raise ValidationError({name: "This field is required."})
    if len(value) > max_length:
        raise ValidationError({name: f"At most {max_length} characters."})
    return value


def _template(value: str, name: str) -> str:
    try:
        Template(value)
    except TemplateSyntaxError as exc:
        raise ValidationError({name: f"Template error: {exc}"}) from exc
    return value


def _number(config: dict, name: str, *, default: float, low: float, high: float) -> float:
    value = config.get(name, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError as exc:
            raise ValidationError({name: "Must be a number."}) from exc
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValidationError({name: "Must be a number."})
    if not low <= value <= high:
        raise ValidationError({name: f"Must be between {low:g} and {high:g}."})
    return value


def validate_step_config(action: str, config: Any) -> dict:
    """Return the cleaned config of a step's action, or raise ValidationError per field.

    - email: ``subject``, ``body_text`` (Django templates with merge fields), ``body_html``
      (optional; defaults to the text with line breaks).
    - coupon: ``kind`` percent|amount, ``value`` > 0, ``expires_days`` (1–365), ``cost``
      (what one redemption costs; defaults to the value for amount coupons, 0 for percent).
    - cs_task: ``title``, ``note``, ``due_days`` (0–90).
    - survey: ``subject``, ``question``, ``body_text`` (optional template).
    - webhook: ``url`` (http/https), ``event`` (name in the payload), ``secret`` (optional;
      defaults to the CAMPAIGNS_WEBHOOK_SECRET setting).
    """
    if not isinstance(config, dict):
        raise ValidationError({"config": "Step configuration must be an object."})
    if action == ActionKind.EMAIL:
        return {
            "subject": _template(
                _text(config, "subject", required=True, max_length=200), "subject"
            ),
            "body_text": _template(
                _text(config, "body_text", required=True, max_length=20000), "body_text"
            ),
            "body_html": _template(
                _text(config, "body_html", required=False, max_length=50000), "body_html"
            ),
        }
    if action == ActionKind.COUPON:
        kind = config.get("kind", Coupon.Kind.PERCENT)
        if kind not in Coupon.Kind.values:
            raise ValidationError({"kind": f"One of {Coupon.Kind.values}."})
        high = 100 if kind == Coupon.Kind.PERCENT else 100000
        value = _number(config, "value", default=0, low=0.01, high=high)
        default_cost = value if kind == Coupon.Kind.AMOUNT else 0
        cost = _number(config, "cost", default=default_cost, low=0, high=100000)
        try:
            Decimal(str(value))
        except InvalidOperation as exc:  # pragma: no cover - float always converts
            raise ValidationError({"value": "Must be a number."}) from exc
        return {
            "kind": kind,
            "value": value,
            "cost": cost,
            "expires_days": int(_number(config, "expires_days", default=30, low=1, high=365)),
        }
    if action == ActionKind.CS_TASK:
        return {
            "title": _template(_text(config, "title", required=True, max_length=200), "title"),
            "note": _template(_text(config, "note", required=False, max_length=4000), "note"),
            "due_days": int(_number(config, "due_days", default=3, low=0, high=90)),
        }
    if action == ActionKind.SURVEY:
        return {
            "subject": _template(
                _text(config, "subject", required=True, max_length=200), "subject"
            ),
            "question": _text(config, "question", required=True, max_length=300),
            "body_text": _template(
                _text(config, "body_text", required=False, max_length=20000), "body_text"
            ),
        }
    if action == ActionKind.WEBHOOK:
        url = _text(config, "url", required=True, max_length=2000)
        try:
            URLValidator(schemes=["http", "https"])(url)
        except ValidationError as exc:
            raise ValidationError({"url": "Enter an http:// or https:// URL."}) from exc
        return {
            "url": url,
            "event": _text(config, "event", required=False, max_length=100) or "plan.step",
            "secret": _text(config, "secret", required=False, max_length=200),
        }
    raise ValidationError({"action": f"Unknown action {action!r}."})


# The results snapshot model lives with the results code (campaigns/results_store.py); the
# import registers it with the app.
from campaigns.results_store import PlanResultsSnapshot  # noqa: E402,F401

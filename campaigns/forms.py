"""Forms of the plan screens. They only shape input: the rules (trigger parameters, step
configs, what may change when) live in ``campaigns.models`` validators and
``campaigns.services``, whose ``ValidationError``s the views put back on these forms."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from campaigns.models import ActionKind, Coupon, DelayBasis, Plan, TriggerKind
from customers.models import Stage
from segments.models import Segment

HOLDOUT_CHOICES_HELP = "Share of enrolled customers held out as the control group (0–90 %)."


class PlanForm(forms.Form):
    """A plan's name, trigger and rules (the ladder of steps is edited separately)."""

    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    trigger_kind = forms.ChoiceField(choices=TriggerKind.choices, label="Trigger")
    stage = forms.ChoiceField(
        choices=Stage.choices, required=False, initial=Stage.COOLING, label="Stage entered"
    )
    days = forms.IntegerField(
        required=False, min_value=1, max_value=3650, initial=30, label="Days without action"
    )
    multiple = forms.FloatField(
        required=False, min_value=1, max_value=100, initial=3, label="× usual gap"
    )
    segment = forms.ModelChoiceField(
        queryset=Segment.objects.order_by("name"),
        required=False,
        help_text="One-off: the customers to enrol. Always-on: only customers in this segment.",
    )
    holdout_percent = forms.IntegerField(
        min_value=0, max_value=90, initial=10, label="Holdout %", help_text=HOLDOUT_CHOICES_HELP
    )
    priority = forms.IntegerField(initial=100, help_text="Higher wins when plans overlap.")
    frequency_cap_per_week = forms.IntegerField(
        min_value=1, max_value=50, initial=3, label="Max actions per week"
    )
    cooldown_days = forms.IntegerField(
        min_value=0, max_value=3650, initial=30, label="Re-entry cool-down (days)"
    )

    @classmethod
    def initial_for(cls, plan: Plan) -> dict[str, Any]:
        params = plan.trigger_params or {}
        return {
            "name": plan.name,
            "description": plan.description,
            "trigger_kind": plan.trigger_kind,
            "stage": params.get("stage", Stage.COOLING),
            "days": params.get("days", 30),
            "multiple": params.get("multiple", 3),
            "segment": plan.segment_id,
            "holdout_percent": plan.holdout_percent,
            "priority": plan.priority,
            "frequency_cap_per_week": plan.frequency_cap_per_week,
            "cooldown_days": plan.cooldown_days,
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("trigger_kind")
        if kind == TriggerKind.STAGE_ENTERED and not data.get("stage"):
            self.add_error("stage", "Choose the stage that starts the plan.")
        if kind == TriggerKind.RECENCY_DAYS and not data.get("days"):
            self.add_error("days", "How many days without an engagement action?")
        if kind == TriggerKind.RECENCY_GAP and not data.get("multiple"):
            self.add_error("multiple", "How many times their usual gap?")
        return data

    def plan_fields(self) -> dict[str, Any]:
        """Keyword arguments for ``plan_create`` / ``plan_update``."""
        d = self.cleaned_data
        kind = d["trigger_kind"]
        params: dict[str, Any] = {}
        if kind == TriggerKind.STAGE_ENTERED:
            params = {"stage": d["stage"]}
        elif kind == TriggerKind.RECENCY_DAYS:
            params = {"days": d["days"]}
        elif kind == TriggerKind.RECENCY_GAP:
            params = {"multiple": d["multiple"]}
        return {
            "name": d["name"],
            "description": d["description"],
            "trigger_kind": kind,
            "trigger_params": params,
            "segment": d["segment"],
            "holdout_percent": d["holdout_percent"],
            "priority": d["priority"],
            "frequency_cap_per_week": d["frequency_cap_per_week"],
            "cooldown_days": d["cooldown_days"],
        }


# Which form fields make up each action's config (config key -> form field).
STEP_CONFIG_FIELDS: dict[str, dict[str, str]] = {
    ActionKind.EMAIL: {"subject": "subject", "body_text": "body_text", "body_html": "body_html"},
    ActionKind.COUPON: {
        "kind": "coupon_kind",
        "value": "coupon_value",
        "cost": "coupon_cost",
        "expires_days": "expires_days",
    },
    ActionKind.CS_TASK: {"title": "title", "note": "note", "due_days": "due_days"},
    ActionKind.SURVEY: {"subject": "subject", "question": "question", "body_text": "body_text"},
    ActionKind.WEBHOOK: {"url": "url", "event": "event", "secret": "secret"},
}
DEFAULT_EMAIL_TEXT = (
    "Hi {{ name }},\n\nWe have not seen you for {{ days_since_last_action }} days. "
    "Here is what is new…\n\n{% if coupon_code %}Your code: {{ coupon_code }}\n{% endif %}"
)


class StepForm(forms.Form):
    """One step: when (delay) and what (action + its config fields)."""

    action = forms.ChoiceField(choices=ActionKind.choices)
    delay_days = forms.FloatField(min_value=0, max_value=365, initial=7, label="Delay (days)")
    delay_basis = forms.ChoiceField(choices=DelayBasis.choices, initial=DelayBasis.ENROLLMENT)
    # email / survey
    subject = forms.CharField(required=False, max_length=200, initial="We miss you, {{ name }}")
    body_text = forms.CharField(
        required=False,
        initial=DEFAULT_EMAIL_TEXT,
        widget=forms.Textarea(attrs={"rows": 5}),
        label="Text",
        help_text="Merge fields: {{ name }}, {{ first_name }}, {{ score }}, "
        "{{ days_since_last_action }}, {{ coupon_code }}, {{ coupon_value }}.",
    )
    body_html = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="HTML (optional)"
    )
    question = forms.CharField(required=False, max_length=300)
    # coupon
    coupon_kind = forms.ChoiceField(
        choices=Coupon.Kind.choices, required=False, initial=Coupon.Kind.PERCENT, label="Coupon"
    )
    coupon_value = forms.DecimalField(required=False, min_value=0, initial=15, label="Value")
    coupon_cost = forms.DecimalField(
        required=False, min_value=0, label="Cost per redemption", help_text="For ROI."
    )
    expires_days = forms.IntegerField(required=False, min_value=1, max_value=365, initial=30)
    # CS task
    title = forms.CharField(required=False, max_length=200, initial="Call {{ name }}")
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    due_days = forms.IntegerField(required=False, min_value=0, max_value=90, initial=3)
    # webhook
    url = forms.URLField(required=False, assume_scheme="https")
    event = forms.CharField(required=False, max_length=100)
    secret = forms.CharField(required=False, max_length=200, widget=forms.PasswordInput)

    def config(self) -> dict[str, Any]:
        """The action's config from the filled fields (validated again by the service)."""
        d = self.cleaned_data
        out: dict[str, Any] = {}
        for key, name in STEP_CONFIG_FIELDS[d["action"]].items():
            value = d.get(name)
            if value in (None, ""):
                continue
            out[key] = float(value) if name in ("coupon_value", "coupon_cost") else value
        return out

    def apply_errors(self, exc: ValidationError) -> None:
        """Put a service's ValidationError on the matching form fields."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        action = self.cleaned_data.get("action", "")
        mapping = STEP_CONFIG_FIELDS.get(action, {})
        for key, errors in exc.error_dict.items():
            name = mapping.get(key, key)
            self.add_error(name if name in self.fields else None, errors)


class LaunchForm(forms.Form):
    segment = forms.ModelChoiceField(queryset=Segment.objects.order_by("name"), required=False)
    start_at = forms.DateTimeField(
        required=False,
        label="Start",
        help_text="Leave empty to start now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )
    holdout_percent = forms.IntegerField(
        min_value=0, max_value=90, label="Holdout %", help_text=HOLDOUT_CHOICES_HELP
    )

    def __init__(self, *args: Any, plan: Plan, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.plan.trigger_kind == TriggerKind.SEGMENT_ONCE and not data.get("segment"):
            self.add_error("segment", "Choose the segment to launch this one-off plan on.")
        return data

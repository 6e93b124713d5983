"""Customers, their touchpoints, touchpoint types and weights, and the engagement state.

The engagement state lives in its own narrow one-to-one table (``Engagement``) rather than
on ``Customer``: the engine rewrites it for every customer on a full rescore, and narrow rows
make that set-based UPDATE several times cheaper than rewriting wide profile rows with traits.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEB = "web", "Web"
    PRODUCT = "product", "Product"
    SOCIAL = "social", "Social"
    PHONE = "phone", "Phone"
    IN_PERSON = "in_person", "In person"
    SUPPORT = "support", "Support"
    BILLING = "billing", "Billing"


class SpendTier(models.TextChoices):
    FREE = "free", "Free"
    LOW = "low", "Low"
    MID = "mid", "Mid"
    HIGH = "high", "High"
    ENTERPRISE = "enterprise", "Enterprise"


class Stage(models.TextChoices):
    NEW = "new", "New"
    ENGAGED = "engaged", "Engaged"
    COOLING = "cooling", "Cooling"
    AT_RISK = "at_risk", "At risk"
    LAPSED = "lapsed", "Lapsed"
    REENGAGED = "reengaged", "Re-engaged"


class Customer(models.Model):
    """A person or account whose engagement we measure."""

    external_id = models.CharField(max_length=255, unique=True)
    email = models.EmailField(blank=True, db_index=True)
    name = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)
    plan = models.CharField("plan / product", max_length=100, blank=True)
    region = models.CharField(max_length=64, blank=True)
    spend_tier = models.CharField(max_length=16, choices=SpendTier.choices, default=SpendTier.LOW)
    lifetime_revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    signup_date = models.DateField()
    renewal_date = models.DateField(null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_customers",
        limit_choices_to={"is_staff": True},
    )
    email_opt_out = models.BooleanField(default=False)
    # False for customers created by a tracking call for an unknown user, until identify().
    is_identified = models.BooleanField(default=True)
    traits = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["region", "id"], name="customer_region_idx"),
            models.Index(fields=["plan", "id"], name="customer_plan_idx"),
            models.Index(fields=["spend_tier", "id"], name="customer_spend_idx"),
            models.Index(fields=["renewal_date"], name="customer_renewal_idx"),
            models.Index(fields=["-lifetime_revenue", "id"], name="customer_revenue_idx"),
            models.Index(fields=["signup_date"], name="customer_signup_idx"),
        ]

    def __str__(self) -> str:
        return self.name or self.email or self.external_id


class TouchpointType(models.Model):
    """A kind of interaction, with the admin-set weight it carries in the score."""

    key = models.SlugField(max_length=64, unique=True)
    label = models.CharField(max_length=100)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    weight = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        validators=[MinValueValidator(-100), MaxValueValidator(100)],
        help_text="Points one touchpoint adds to the raw score when fresh; negative for "
        "complaints or unsubscribes.",
    )
    counts_as_engagement = models.BooleanField(
        default=True,
        help_text="Whether this resets 'time since last engagement action'.",
    )
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["channel", "key"]

    def __str__(self) -> str:
        return self.label


class Touchpoint(models.Model):
    """One interaction of one customer; (source, idempotency_key) makes ingest repeatable."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="touchpoints")
    type = models.ForeignKey(TouchpointType, on_delete=models.PROTECT, related_name="touchpoints")
    occurred_at = models.DateTimeField()
    value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    source = models.CharField(max_length=64, default="api")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="touchpoint_unique_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "occurred_at"], name="touchpoint_customer_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type_id} for {self.customer_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class Engagement(models.Model):
    """The engine's current view of one customer; written only by the engine."""

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="engagement"
    )
    score = models.FloatField(default=0.0, help_text="0–100, decayed and normalized.")
    decay_sum = models.FloatField(
        default=0.0, help_text="Σ weight·2^((t−epoch)/half-life): forward-decay accumulator."
    )
    first_engagement_at = models.DateTimeField(null=True, blank=True)
    last_engagement_at = models.DateTimeField(null=True, blank=True)
    frequency = models.IntegerField(default=0, help_text="Number of engagement actions.")
    expected_gap_days = models.FloatField(
        null=True, blank=True, help_text="This customer's own typical days between actions."
    )
    p_alive = models.FloatField(
        null=True, blank=True, help_text="Probability the customer is still engaged (MBG/NBD)."
    )
    trend_30d = models.FloatField(
        null=True, blank=True, help_text="Score now minus score 30 days ago."
    )
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.NEW)
    stage_since = models.DateTimeField(null=True, blank=True)
    stage_rule = models.CharField(max_length=32, blank=True)
    stage_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When time alone would move the stage next."
    )
    computed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["stage", "-score"], name="engagement_stage_score_idx"),
            models.Index(fields=["-score"], name="engagement_score_idx"),
            models.Index(fields=["p_alive"], name="engagement_palive_idx"),
            models.Index(fields=["last_engagement_at"], name="engagement_last_idx"),
            models.Index(fields=["stage_due_at"], name="engagement_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.stage} {self.score:.0f}"


def default_decay_epoch() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


class EngagementSettings(models.Model):
    """The single row of engine settings admins edit (half-life, normalization, stage rules).

    Defaults and what they mean are documented in docs/engagement.md.
    """

    positive = [MinValueValidator(0.001)]

    half_life_days = models.FloatField(
        default=30.0,
        validators=positive,
        help_text="After this many days a touchpoint counts half as much.",
    )
    score_half_point = models.FloatField(
        default=10.0,
        validators=positive,
        help_text="Raw (decayed) points that map to a score of 50. Score = "
        "100·(1 − 2^(−raw / this)).",
    )
    decay_epoch = models.DateTimeField(
        default=default_decay_epoch,
        help_text="Reference time of the stored decay sums; the engine moves it forward.",
    )
    new_window_days = models.FloatField(default=30.0, validators=positive)
    default_gap_days = models.FloatField(default=14.0, validators=positive)
    min_gap_days = models.FloatField(default=2.0, validators=positive)
    max_gap_days = models.FloatField(default=60.0, validators=positive)
    cooling_multiple = models.FloatField(default=2.0, validators=positive)
    cooling_min_days = models.FloatField(default=7.0, validators=positive)
    at_risk_multiple = models.FloatField(default=4.0, validators=positive)
    at_risk_min_days = models.FloatField(default=21.0, validators=positive)
    lapsed_multiple = models.FloatField(default=8.0, validators=positive)
    lapsed_min_days = models.FloatField(default=60.0, validators=positive)
    lapsed_max_days = models.FloatField(default=180.0, validators=positive)
    at_risk_p_alive = models.FloatField(
        default=0.3, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    reengaged_window_days = models.FloatField(default=30.0, validators=positive)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "engagement settings"
        verbose_name_plural = "engagement settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="engagement_settings_singleton"),
        ]

    def __str__(self) -> str:
        return "Engagement settings"

    @classmethod
    def load(cls) -> EngagementSettings:
        """The settings row, created with defaults on first use."""
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

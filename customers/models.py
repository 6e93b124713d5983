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
            # The list sorted by name (keyset pages on (name, id)).
            models.Index(fields=["name", "id"], name="customer_name_idx"),
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

    # No single-column index on customer: the (customer, occurred_at) index below covers it.
    # Both references are enforced by statement-level triggers instead of foreign-key
    # constraints (migration 0010): a constraint checks and locks its parent row once per
    # inserted row, 36 % of a bulk insert's time; the triggers check and lock the distinct
    # parents once per statement, with the same guarantees (see docs/performance.md).
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="touchpoints",
        db_index=False,
        db_constraint=False,
    )
    # No index of its own either: nothing looks touchpoints up by type alone (the covering
    # index below includes it), and each index costs every ingest path on every row. The
    # PROTECT check on deleting a type scans instead — rare, and an admin action.
    type = models.ForeignKey(
        TouchpointType,
        on_delete=models.PROTECT,
        related_name="touchpoints",
        db_index=False,
        db_constraint=False,
    )
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
            # Covering (type included): a full rescore streams it in customer order with an
            # index-only scan and a group aggregate — no hash table, no sort, no heap reads.
            models.Index(
                fields=["customer", "occurred_at"],
                include=["type"],
                name="touchpoint_customer_time_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type_id} for {self.customer_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class Engagement(models.Model):
    """One customer's lifecycle stage and its explanation; written only by the engine, and
    only when the stage or its rule changes (and by the nightly pass, for the trend).

    What every new touchpoint changes (decay sum, activity, P(alive), due time) lives in the
    narrow ``ScoreState`` row instead, so the incremental refresh writes one row version per
    customer and leaves this table's stage indexes alone (see docs/performance.md).
    """

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="engagement"
    )
    trend_30d = models.FloatField(
        null=True, blank=True, help_text="Score now minus score 30 days ago."
    )
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.NEW)
    stage_since = models.DateTimeField(null=True, blank=True)
    stage_rule = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["stage"], name="engagement_stage_idx"),
            # "Disengaging now" (dashboard summary): who entered cooling / at risk lately.
            models.Index(
                fields=["stage_since"],
                condition=Q(stage__in=["cooling", "at_risk"]),
                name="engagement_slipping_since_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.stage}"


class ScoreState(models.Model):
    """One customer's live engine state: everything a new touchpoint changes, in one narrow row.

    No stored score: at any instant the 0–100 score is one monotone function of decay_sum
    shared by all customers (see customers/engine/decay.py), so it is computed live on read
    and never goes stale; score filters and sorts use the index on decay_sum.

    Narrow on purpose, for the two hot write paths:

    - the incremental refresh writes one row version per changed customer here (and touches
      ``Engagement`` only when the stage moves): one heap update and four index entries
      instead of two updates and seven;
    - a weight or half-life change rebuilds this table in one parallel ``CREATE TABLE … AS``
      and swaps it in (``engagement_scores_rebuild``) instead of updating a million rows.
    """

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="score_state"
    )
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
    stage_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When time alone would move the stage next."
    )
    computed_at = models.DateTimeField(null=True, blank=True)
    # The engine's copy of the stage it last wrote to ``Engagement`` (stage and rule as codes,
    # see customers/engine/stages.py; NULL = never evaluated): the refresh reads a customer's
    # previous stage from this row instead of a second random read per customer, and
    # ``Engagement`` is written only when the stage or rule moves. Not indexed: screens
    # filter on ``Engagement.stage``.
    stage_code = models.SmallIntegerField(null=True, blank=True)
    stage_rule_code = models.SmallIntegerField(null=True, blank=True)
    stage_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-decay_sum"], name="score_decay_idx"),
            models.Index(fields=["last_engagement_at"], name="score_last_idx"),
            models.Index(fields=["stage_due_at"], name="score_due_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.decay_sum:.6g}"


def default_decay_epoch() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


class EngagementSettings(models.Model):
    """The single row of engine settings admins edit (half-life, normalization, stage rules).

    Defaults and what they mean are documented in docs/engagement.md.
    """

    positive = [MinValueValidator(0.001)]

    half_life_days = models.FloatField(
        default=30.0,
        validators=[MinValueValidator(1.0), MaxValueValidator(3650.0)],
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


class PendingTouchpoint(models.Model):
    """A touchpoint whose score contribution is not yet applied to its customer.

    Written in the same transaction as the touchpoint, drained by the incremental refresh with
    ``SKIP LOCKED`` and deleted in the transaction that applies it: a touchpoint whose
    transaction commits late is simply drained later, never skipped, and never applied twice.
    """

    id = models.BigAutoField(primary_key=True)
    # No database foreign key: its per-row check was a fifth of a bulk import's CPU, and
    # nothing needs it — the refresh joins the queue to touchpoints (a row whose touchpoint
    # is gone contributes nothing and is deleted with the rest), and deletes through the
    # ORM still cascade here (Django's collector, not the database, does that).
    touchpoint = models.OneToOneField(
        Touchpoint, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    # Not indexed: every ingest path writes one queue row per touchpoint, and a random
    # insert into a customer index was a third of that cost; the refresh drains in id order,
    # and the rescore's ranges read a staged copy that has its own index.
    customer_id = models.BigIntegerField()

    def __str__(self) -> str:
        return f"pending touchpoint {self.touchpoint_id}"


class StageChange(models.Model):
    """One move of one customer between stages: triggers for plans, data for flow charts."""

    # Enforced by statement triggers, as for touchpoints (migration 0010): the refresh writes
    # hundreds of these per batch, and a foreign key checked and locked the customer row of
    # each one at commit. No index of its own: (customer, changed_at) below covers it.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="stage_changes",
        db_constraint=False,
        db_index=False,
    )
    from_stage = models.CharField(max_length=16, choices=Stage.choices, blank=True)
    to_stage = models.CharField(max_length=16, choices=Stage.choices)
    changed_at = models.DateTimeField()
    score = models.FloatField()
    p_alive = models.FloatField(null=True, blank=True)
    rule = models.CharField(max_length=32, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["changed_at"], name="stagechange_time_idx"),
            models.Index(fields=["customer", "changed_at"], name="stagechange_customer_idx"),
            models.Index(fields=["to_stage", "changed_at"], name="stagechange_to_idx"),
        ]

    def __str__(self) -> str:
        moved = f"{self.from_stage or '-'} → {self.to_stage}"
        return f"{self.customer_id}: {moved} at {self.changed_at:%Y-%m-%d}"


class ScoreSnapshot(models.Model):
    """One day's score, stage and P(alive) for a block of 1,024 consecutive customer ids.

    Packed little-endian arrays (see ``customers/engine/snapshots.py``) instead of one row per
    customer per day: about 5 KB per block per day, roughly 10x smaller than a row per
    customer (whose 24-byte tuple header alone outweighs the data), and one day for a million
    customers is ~1,000 rows to write.
    """

    day = models.DateField()
    block = models.IntegerField()
    scores = models.BinaryField()  # uint16 score x 100; 65535 = no customer with that id
    stages = models.BinaryField()  # uint8 stage code; 255 = no customer
    p_alive = models.BinaryField()  # uint16 P(alive) x 10000; 65535 = unknown

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "block"], name="snapshot_day_block_unique")
        ]

    def __str__(self) -> str:
        return f"snapshot {self.day} block {self.block}"


class StageDaily(models.Model):
    """Customers and lifetime revenue per stage at the nightly pass: stage-size trend lines."""

    day = models.DateField()
    stage = models.CharField(max_length=16, choices=Stage.choices)
    customers = models.IntegerField()
    revenue = models.DecimalField(max_digits=18, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "stage"], name="stagedaily_day_stage_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.stage}: {self.customers}"


class ModelFit(models.Model):
    """A fitted MBG/NBD model: the parameters P(still engaged) is computed from."""

    as_of = models.DateTimeField()
    r = models.FloatField()
    alpha = models.FloatField()
    a = models.FloatField()
    b = models.FloatField()
    customers = models.IntegerField()
    log_likelihood = models.FloatField()
    converged = models.BooleanField()
    seconds = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"MBG/NBD fit as of {self.as_of:%Y-%m-%d} on {self.customers} customers"


class JobRun(models.Model):
    """One run of a scheduled or triggered engine job, for admins to watch."""

    class Kind(models.TextChoices):
        REFRESH = "refresh", "Incremental refresh"
        RESCORE = "rescore", "Full rescore"
        NIGHTLY = "nightly", "Nightly pass"
        FIT = "fit", "Model fit"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        SUPERSEDED = "superseded", "Superseded"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    customers_processed = models.BigIntegerField(default=0)
    changes_made = models.BigIntegerField(default=0)
    chunks_total = models.IntegerField(default=0)
    chunks_done = models.IntegerField(default=0)
    error = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    triggered_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["kind", "status"], name="jobrun_kind_status_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def progress(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        if not self.chunks_total:
            return 0.0
        return self.chunks_done / self.chunks_total

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class JobChunk(models.Model):
    """One id range of a chunked job; claimed and completed in the transaction doing the work,
    so a redelivered chunk finds it done and a killed worker leaves it pending."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        SKIPPED = "skipped", "Skipped"

    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="chunks")
    number = models.IntegerField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    customers_processed = models.IntegerField(default=0)
    changes_made = models.IntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "number"], name="jobchunk_run_number_unique")
        ]

    def __str__(self) -> str:
        return f"chunk {self.number} of run {self.run_id} ({self.status})"


class EngineLease(models.Model):
    """Named lease: the SQLite stand-in for PostgreSQL advisory locks (see engine/locks.py)."""

    name = models.CharField(max_length=64, primary_key=True)
    holder = models.CharField(max_length=128)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"lease {self.name} held by {self.holder}"


class DashboardSummary(models.Model):
    """The dashboard's whole-table figures, computed off the request path.

    Written by ``customers.dashboard.dashboard_summary_refresh`` (beat, every minute, and
    after engine jobs); the dashboard reads the newest row, so a request never aggregates
    over the engagement, score or stage-change tables. Older rows are pruned.
    """

    computed_at = models.DateTimeField()
    customers = models.BigIntegerField(default=0)
    stage_counts = models.JSONField(default=dict)  # {stage: customers}
    flows = models.JSONField(default=list)  # [[from stage, to stage, moves], ...]
    flow_days = models.IntegerField(default=30)
    score_edges = models.JSONField(default=list)  # histogram bin edges, 0–100
    score_counts = models.JSONField(default=list)  # customers per bin
    disengaging_customers = models.BigIntegerField(default=0)
    disengaging_revenue = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    disengaging_top = models.JSONField(default=list)  # customer ids, most revenue first
    disengaging_days = models.IntegerField(default=7)
    seconds = models.FloatField(default=0.0, help_text="Time the refresh took.")

    class Meta:
        get_latest_by = "id"

    def __str__(self) -> str:
        return f"dashboard summary as of {self.computed_at:%Y-%m-%d %H:%M:%S}"

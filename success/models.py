"""Customer-success notes: what staff did for an account, kept next to the engine's view."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from customers.models import Customer, Touchpoint


class CustomerNote(models.Model):
    """A note by a staff member; each one records a contact (call or meeting) as a touchpoint,
    so the engine sees that the account was worked."""

    class Kind(models.TextChoices):
        CS_CALL = "cs_call", "Call"
        MEETING = "meeting", "Meeting"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CS_CALL)
    body = models.TextField(max_length=4000)
    touchpoint = models.OneToOneField(
        Touchpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["customer", "-created"], name="note_customer_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} note on {self.customer_id}"


class RenewalRisk(models.Model):
    """One account on the renewal-risk list, ranked: the list precomputed off the request path.

    Rows exist for the accounts renewing within ``success.selectors.MAX_DAYS`` whose
    engagement is low, falling or slipping (``success.selectors.renewal_risk_candidates``),
    with the revenue at risk that ranks them. Written by ``success.risk`` (when, see there)
    so the screen reads 50 rows off an index instead of ranking every renewing account on
    each request.
    """

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="renewal_risk"
    )
    # Copies of the customer's fields, so the window and "my accounts" filter on this table.
    renewal_date = models.DateField()
    owner_id = models.BigIntegerField(null=True, blank=True)
    risk = models.FloatField(help_text="1 − P(still engaged), or 1 − score/100 without a model.")
    revenue_at_risk = models.FloatField(help_text="Lifetime revenue × risk.")
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [
            # Pages in rank order; the window is checked on each row walked.
            models.Index(fields=["-revenue_at_risk", "customer"], name="risk_rank_idx"),
            models.Index(
                fields=["owner_id", "-revenue_at_risk", "customer"], name="risk_owner_rank_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.revenue_at_risk:.2f} at risk"


class RenewalRiskDay(models.Model):
    """Accounts on the list and their revenue at risk per renewal day and owner: the list's
    totals for any window in a few hundred rows instead of an aggregate over the list.
    Rebuilt with the list (``success.risk``)."""

    renewal_date = models.DateField()
    owner_id = models.BigIntegerField(null=True, blank=True)
    accounts = models.IntegerField()
    revenue_at_risk = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["renewal_date", "owner_id"], name="risk_day_idx")]

    def __str__(self) -> str:
        return f"{self.renewal_date} owner {self.owner_id}: {self.accounts} accounts"


class RenewalRiskRefresh(models.Model):
    """When the renewal-risk list was last recomputed in full (one row, pk=1): the "as of"
    time the screen shows; and when changed accounts were last looked for."""

    computed_at = models.DateTimeField()
    checked_at = models.DateTimeField()
    accounts = models.IntegerField(default=0)
    seconds = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"renewal risk as of {self.computed_at:%Y-%m-%d %H:%M:%S}"

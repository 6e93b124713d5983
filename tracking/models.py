"""The Segment-compatible tracking API's own data: sources and their write keys, the
admin-edited mapping from event names to touchpoint types, events waiting for a mapping,
rejected messages, and identity aliases.

Touchpoints themselves live in ``customers``: a mapped event becomes a ``Touchpoint`` with
``source`` = the source's slug and ``idempotency_key`` = the message's ``messageId``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from customers.models import Customer, TouchpointType


class Source(models.Model):
    """One sending system (a Segment source, a RudderStack pipeline, an app's backend)."""

    name = models.CharField(max_length=100, unique=True)
    # Touchpoint.source of everything this source sends; also its idempotency namespace.
    slug = models.SlugField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WriteKey(models.Model):
    """A write key of a source, stored as its SHA-256 (the key is shown once, at creation).

    A source may hold several live keys at once, so a key is rotated without downtime: add a
    new key, move the senders to it, revoke the old one.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="keys")
    prefix = models.CharField(max_length=16, help_text="First characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["source", "-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.source})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class EventMapping(models.Model):
    """Which touchpoint type a tracked event name becomes (``page`` and ``screen`` calls map
    as the event names ``Page Viewed`` and ``Screen Viewed``)."""

    event_name = models.CharField(max_length=200, unique=True)
    type = models.ForeignKey(TouchpointType, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["event_name"]

    def __str__(self) -> str:
        return f"{self.event_name} → {self.type_id}"


class UnmappedEvent(models.Model):
    """A tracked event whose name has no mapping yet: kept whole until an admin maps the name,
    then converted into a touchpoint (and deleted) by the backfill."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    message_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    properties = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "message_id"], name="unmappedevent_source_message_unique"
            )
        ]
        indexes = [models.Index(fields=["event_name", "id"], name="unmappedevent_name_idx")]

    def __str__(self) -> str:
        return f"{self.event_name} ({self.message_id})"


class RejectedMessage(models.Model):
    """A message the API refused (kept so an admin can see what a sender got wrong)."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField()
    endpoint = models.CharField(max_length=16)
    index = models.IntegerField(null=True, blank=True, help_text="Position in the batch.")
    message_id = models.CharField(max_length=255, blank=True)
    error = models.TextField()
    payload = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["-received_at"], name="rejectedmessage_time_idx")]

    def __str__(self) -> str:
        return f"{self.endpoint} #{self.index}: {self.error[:60]}"


class CustomerAlias(models.Model):
    """Another id a customer is known by: ``anon:<anonymousId>`` after the anonymous profile
    was re-keyed or merged, or a ``previousId`` from an ``alias`` call."""

    alias = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "customer aliases"

    def __str__(self) -> str:
        return f"{self.alias} → {self.customer_id}"

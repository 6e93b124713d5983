"""Saved segments: a named CustomerFilter, evaluated as a query whenever it is used."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.http import QueryDict


class Segment(models.Model):
    """A saved filter over customers. ``params`` are CustomerFilter query parameters
    (``{"stage": ["cooling"], "region": ["Europe"]}``), validated on save; membership is never
    copied — ``segments.selectors.segment_customers`` turns the params back into a query."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="segments",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    cached_size = models.BigIntegerField(null=True, blank=True)
    cached_size_exact = models.BooleanField(default=True)
    size_counted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def query_string(self) -> str:
        """The filter as a query string (links to the customer list and export)."""
        data = QueryDict(mutable=True)
        for name, values in self.params.items():
            data.setlist(name, [str(v) for v in values])
        return data.urlencode()


class SegmentSize(models.Model):
    """A segment's size on one day (recorded daily by a beat task and on every save)."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="sizes")
    day = models.DateField()
    customers = models.BigIntegerField()
    exact = models.BooleanField(default=True)

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "day"], name="segmentsize_segment_day")
        ]

    def __str__(self) -> str:
        return f"{self.segment_id} on {self.day}: {self.customers}"

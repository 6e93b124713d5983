"""The stored results of a plan: the rows of ``campaigns.results.results_aggregates``.

The results page of a plan with 100,000 enrollments needs about a second of aggregation
(revenue join, cumulative curve, best moment); reading one stored row takes milliseconds. The
plan tick refreshes the snapshot of every running plan at most every
``RESULTS_REFRESH_SECONDS`` (``campaigns.results.results_refresh_due``); the page computes
live when the snapshot is missing or older than ``RESULTS_MAX_AGE_SECONDS``, and a marketer
can refresh it on demand.

Imported by ``campaigns/models.py`` so Django registers the model with the app.
"""

from __future__ import annotations

from django.db import models


class PlanResultsSnapshot(models.Model):
    """One plan's aggregate rows as of ``computed_at`` (JSON; a few kilobytes)."""

    plan = models.OneToOneField(
        "campaigns.Plan", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    computed_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    data = models.JSONField()

    class Meta:
        app_label = "campaigns"

    def __str__(self) -> str:
        return f"results of plan {self.plan_id} at {self.computed_at:%Y-%m-%d %H:%M}"

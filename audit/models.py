"""Who changed which engine setting, from what to what, and when."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SettingsChange(models.Model):
    """One changed field of one settings object (engine settings or a touchpoint type)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    what = models.CharField(max_length=100, help_text="e.g. 'engagement settings', 'type login'")
    field = models.CharField(max_length=64)
    old = models.CharField(max_length=255, blank=True)
    new = models.CharField(max_length=255, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.what}.{self.field}: {self.old} → {self.new}"

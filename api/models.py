"""API tokens: how other systems authenticate to the REST API.

A token acts as one staff role (not as a person), belongs to one named integration, and is
stored only as the SHA-256 of its secret: the secret is shown once, when it is issued.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from customers.roles import Role


class ApiToken(models.Model):
    """One integration's credential for the REST API; revoked tokens stay for the record."""

    name = models.CharField("integration", max_length=100)
    role = models.CharField(
        max_length=32,
        choices=[(role.value, role.value) for role in Role],
        help_text="The staff role this integration acts as.",
    )
    prefix = models.CharField(
        max_length=16, help_text="First characters of the secret, to recognise it in lists."
    )
    secret_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

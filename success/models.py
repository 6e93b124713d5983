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

"""Writes customer-success staff make: notes that record a contact with the account."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from customers.engagement import touchpoint_add
from customers.models import Customer, TouchpointType
from success.models import CustomerNote

MAX_NOTE_LENGTH = 4000
CONTACTED_BODY = {CustomerNote.Kind.CS_CALL: "Called.", CustomerNote.Kind.MEETING: "Met."}


class NoteError(ValueError):
    """A note that cannot be saved, with a message staff can act on."""


def customer_note_add(
    *, customer: Customer, author, body: str, kind: str, now: datetime | None = None
) -> CustomerNote:
    """Save a note and record the contact as a touchpoint (type ``cs_call`` or ``meeting``),
    in one transaction, through the engine's ``touchpoint_add`` so the score and stage see it.

    An empty body means "mark contacted" and gets a short default text. Raises ``NoteError``
    for an unknown kind, an over-long body, or a contact type an admin switched off.
    """
    if kind not in CustomerNote.Kind.values:
        raise NoteError(f"Choose how you contacted them: {', '.join(CustomerNote.Kind.labels)}.")
    body = (body or "").strip() or CONTACTED_BODY[CustomerNote.Kind(kind)]
    if len(body) > MAX_NOTE_LENGTH:
        raise NoteError(f"Keep the note under {MAX_NOTE_LENGTH} characters (it has {len(body)}).")
    touchpoint_type = TouchpointType.objects.filter(key=kind, is_active=True).first()
    if touchpoint_type is None:
        raise NoteError(
            f"The touchpoint type '{kind}' is missing or switched off; ask an admin to enable "
            f"it in Settings."
        )
    occurred_at = now or timezone.now()
    with transaction.atomic():
        touchpoint = touchpoint_add(
            customer=customer,
            type=touchpoint_type,
            occurred_at=occurred_at,
            source="cs",
            properties={"by": getattr(author, "username", "")},
        )
        return CustomerNote.objects.create(
            customer=customer, author=author, kind=kind, body=body, touchpoint=touchpoint
        )

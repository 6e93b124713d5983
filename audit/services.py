"""Recording settings changes for the audit list on the settings page."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models

from audit.models import SettingsChange


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def settings_changes_record(
    *, before: models.Model, after: models.Model, fields: Iterable[str], what: str, user: Any
) -> list[SettingsChange]:
    """Write one audit row per field whose value differs between ``before`` and ``after``.

    ``before`` is the stored row as it was (read before saving); unchanged fields are skipped,
    so a form that reports a field as changed without a real difference leaves no noise.
    """
    rows = [
        SettingsChange(
            user=user if getattr(user, "pk", None) else None,
            what=what,
            field=name,
            old=_text(getattr(before, name)),
            new=_text(getattr(after, name)),
        )
        for name in fields
        if getattr(before, name) != getattr(after, name)
    ]
    return SettingsChange.objects.bulk_create(rows)

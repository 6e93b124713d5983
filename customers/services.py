"""Writes that staff make to engine settings, and the recomputation each one needs."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from customers.models import EngagementSettings, TouchpointType

# Which changes need which recomputation. Normalization (score_half_point) needs none: the
# score is computed live from the stored decay sums.
SCORE_FIELDS = frozenset({"weight", "half_life_days"})
ACTIVITY_FIELDS = frozenset({"counts_as_engagement", "is_active"})
STAGE_FIELDS = frozenset(
    f.name
    for f in EngagementSettings._meta.fields
    if f.name.endswith(("_days", "_multiple", "_p_alive")) and f.name != "half_life_days"
)


def rescore_needed(changed: Iterable[str]) -> str | None:
    """'full', 'scores' or None for a set of changed field names."""
    changed = set(changed)
    if changed & (ACTIVITY_FIELDS | STAGE_FIELDS):
        return "full"
    if changed & SCORE_FIELDS:
        return "scores"
    return None


def engine_change_saved(*, changed: Iterable[str], what: str, user=None) -> str | None:
    """Start the recomputation a saved change needs, after the transaction commits."""
    from customers.tasks import rescore_enqueue

    mode = rescore_needed(changed)
    if mode:
        rescore_enqueue(
            full=mode == "full",
            reason=f"{what}: {', '.join(sorted(changed))}",
            triggered_by=getattr(user, "username", "") or "",
        )
    return mode


def engagement_settings_save(
    *, settings: EngagementSettings, changed: Iterable[str], user
) -> str | None:
    with transaction.atomic():
        settings.updated_by = user
        settings.save()
        return engine_change_saved(changed=changed, what="engagement settings", user=user)


def touchpoint_type_save(
    *, touchpoint_type: TouchpointType, changed: Iterable[str], user
) -> str | None:
    with transaction.atomic():
        touchpoint_type.save()
        return engine_change_saved(
            changed=changed, what=f"touchpoint type {touchpoint_type.key}", user=user
        )

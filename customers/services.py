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


def engine_settings_update(
    *,
    settings: EngagementSettings | None,
    settings_changed: Iterable[str] = (),
    types: Iterable[tuple[TouchpointType, Iterable[str]]] = (),
    user,
) -> str | None:
    """Save engine settings and touchpoint types changed together, in one transaction: one
    audit row per changed field (who, what, old → new) and one recomputation for the lot
    ('full', 'scores' or None, as ``rescore_needed``)."""
    from audit.services import settings_changes_record

    changed: set[str] = set()
    what: list[str] = []
    with transaction.atomic():
        if settings is not None:
            fields = list(settings_changed)
            before = EngagementSettings.objects.filter(pk=settings.pk).first()
            settings.updated_by = user
            settings.save()
            if before is not None and fields:
                settings_changes_record(
                    before=before,
                    after=settings,
                    fields=fields,
                    what="engagement settings",
                    user=user,
                )
                changed |= set(fields)
                what.append("engagement settings")
        for touchpoint_type, type_changed in types:
            fields = list(type_changed)
            is_new = touchpoint_type.pk is None
            if not fields and not is_new:
                continue
            before = (
                None if is_new else TouchpointType.objects.filter(pk=touchpoint_type.pk).first()
            )
            touchpoint_type.save()
            if not fields:
                continue  # a new type: no touchpoints carry it yet, nothing to recompute
            settings_changes_record(
                before=before or TouchpointType(),  # a new type: every field "was" empty
                after=touchpoint_type,
                fields=fields,
                what=f"touchpoint type {touchpoint_type.key}",
                user=user,
            )
            changed |= set(fields)
            what.append(f"touchpoint type {touchpoint_type.key}")
        if not changed:
            return None
        return engine_change_saved(changed=changed, what=" + ".join(what), user=user)


def engagement_settings_save(
    *, settings: EngagementSettings, changed: Iterable[str], user
) -> str | None:
    return engine_settings_update(settings=settings, settings_changed=changed, user=user)


def touchpoint_type_save(
    *, touchpoint_type: TouchpointType, changed: Iterable[str], user
) -> str | None:
    return engine_settings_update(settings=None, types=[(touchpoint_type, changed)], user=user)

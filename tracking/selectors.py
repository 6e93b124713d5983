"""Reads for the tracking settings screen."""

from __future__ import annotations

from django.db.models import Count, Max, Min, Prefetch, QuerySet

from tracking.models import EventMapping, RejectedMessage, Source, UnmappedEvent, WriteKey


def sources_with_keys() -> QuerySet[Source]:
    return Source.objects.prefetch_related(
        Prefetch("keys", queryset=WriteKey.objects.order_by("revoked_at", "-created_at"))
    )


def event_mappings() -> QuerySet[EventMapping]:
    return EventMapping.objects.select_related("type").order_by("event_name")


def unmapped_event_names(limit: int = 200) -> list[dict]:
    """Event names waiting for a mapping, most frequent first: count, first and last seen.

    A name that already has a mapping but still has stored events is one whose backfill is
    running (or was interrupted); ``mapped`` says so, and the screen offers to run it again.
    """
    rows = list(
        UnmappedEvent.objects.values("event_name")
        .annotate(
            count=Count("id"),
            first_seen=Min("occurred_at"),
            last_seen=Max("occurred_at"),
            customers=Count("customer_id", distinct=True),
        )
        .order_by("-count", "event_name")[:limit]
    )
    mapped = set(
        EventMapping.objects.filter(event_name__in=[r["event_name"] for r in rows]).values_list(
            "event_name", flat=True
        )
    )
    for row in rows:
        row["mapped"] = row["event_name"] in mapped
    return rows


def rejected_recent(limit: int = 20) -> QuerySet[RejectedMessage]:
    return RejectedMessage.objects.select_related("source").order_by("-received_at", "-id")[:limit]

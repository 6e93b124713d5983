"""Reads for the import screens."""

from __future__ import annotations

from django.db.models import QuerySet

from imports.models import ImportRun


def imports_recent(limit: int = 20) -> QuerySet[ImportRun]:
    """The latest imports, newest first."""
    return ImportRun.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]

"""The time rules every ingest path shares (REST API, tracking API, CSV import).

Timestamps must be timezone-aware: a naive one is ambiguous and is rejected with a message
saying so, never guessed. Old (backfilled) events are welcome — forward decay scores a
touchpoint by its own time, whenever it arrives. Events further ahead of the server's clock
than ``MAX_FUTURE_SKEW_SECONDS`` are rejected: a client clock that runs ahead would otherwise
inflate scores until real time catches up.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings


def max_future_skew() -> timedelta:
    """How far ahead of the server's clock an event may be stamped (one setting for all)."""
    return timedelta(seconds=settings.MAX_FUTURE_SKEW_SECONDS)

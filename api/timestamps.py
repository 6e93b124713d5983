"""The REST API's timestamp parsing, on the time rules every ingest path shares
(``customers/timestamps.py``): aware timestamps only, a bounded future skew."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from customers.timestamps import max_future_skew

NAIVE_MESSAGE = (
    "This timestamp has no timezone. Add a UTC offset or Z, e.g. 2026-06-01T12:00:00Z or "
    "2026-06-01T14:00:00+02:00."
)
FORMAT_MESSAGE = (
    "Not a valid ISO 8601 timestamp. Use e.g. 2026-06-01T12:00:00Z or 2026-06-01T14:00:00+02:00."
)


def future_message() -> str:
    seconds = settings.MAX_FUTURE_SKEW_SECONDS
    return (
        f"This timestamp is in the future (more than {seconds} seconds ahead of the server's "
        "clock). Check the sender's clock and timezone offset."
    )


def timestamp_parse(
    raw: object, *, now: datetime, latest: datetime | None = None
) -> tuple[datetime | None, str | None]:
    """``(aware datetime, None)`` or ``(None, message)`` for a client-sent timestamp.
    ``latest`` (``now`` + the allowed skew) may be passed precomputed for batches."""
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError:
            return None, FORMAT_MESSAGE
    else:
        return None, FORMAT_MESSAGE
    if value.tzinfo is None or value.utcoffset() is None:
        return None, NAIVE_MESSAGE
    if value > (latest or now + max_future_skew()):
        return None, future_message()
    return value, None

"""Reading Segment-spec requests: body limits, gzip, JSON, and one message's validation.

Pure functions over bytes and dicts (no database), so every rule is testable on its own.
Spec facts used (Segment HTTP Tracking API and its "Common fields" spec):

- at most 32 KB per call, and at most 500 KB per ``batch`` request with 32 KB per message;
- every message names a ``userId`` or an ``anonymousId``; ``track`` needs an ``event``;
- ``messageId`` identifies a message; a repeated one is a duplicate;
- clock skew: ``timestamp = receivedAt − (sentAt − originalTimestamp)``, i.e. the client's
  ``timestamp`` moved by the difference between our clock and the client's when it sent.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

KB = 1024
MAX_MESSAGE_BYTES = 32 * KB
MAX_BATCH_BYTES = 500 * KB
KINDS = ("identify", "track", "page", "screen", "group", "alias")
# page and screen calls go through the event mapping under these names.
PAGE_EVENT = "Page Viewed"
SCREEN_EVENT = "Screen Viewed"
MAX_ID_LENGTH = 255
ANON_PREFIX = "anon:"
MAX_ANON_ID_LENGTH = MAX_ID_LENGTH - len(ANON_PREFIX)
MAX_EVENT_NAME_LENGTH = 200
# Touchpoint.value is DECIMAL(14, 2).
MAX_VALUE = Decimal("999999999999.99")


class RequestError(Exception):
    """The request as a whole cannot be read: answered with ``status`` and nothing is kept."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class MessageError(ValueError):
    """One message breaks a rule; the text says which and how to fix it."""


@dataclass
class Message:
    """One validated message, with its time corrected for the sender's clock skew."""

    index: int | None
    kind: str
    message_id: str
    occurred_at: datetime
    user_id: str | None = None
    anonymous_id: str | None = None
    event: str | None = None  # the mapping key: track's event, or Page/Screen Viewed
    properties: dict = field(default_factory=dict)
    traits: dict = field(default_factory=dict)
    fields: dict = field(default_factory=dict)  # Customer columns set by identify/group
    value: Decimal | None = None
    group_id: str | None = None
    previous_id: str | None = None
    raw: Any = field(default=None, repr=False)  # as sent, for the record of a refusal


def body_read(raw: bytes, *, content_encoding: str, limit: int, endpoint: str) -> bytes:
    """The request body, decompressed, or ``RequestError``.

    The limit counts decompressed bytes (what the spec limits), and decompression stops one
    byte past the limit, so a small gzip bomb never inflates in memory.
    """
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        body = raw
    elif encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(raw, limit + 1)
        except zlib.error as exc:
            message = f"The body is not valid gzip ({exc})."
            raise RequestError(400, "invalid_gzip", message) from None
        if len(body) <= limit and not inflater.eof:
            raise RequestError(400, "invalid_gzip", "The gzip body is truncated.")
    else:
        raise RequestError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {content_encoding!r} is not supported; send gzip or no encoding.",
        )
    if len(body) > limit:
        raise RequestError(413, "payload_too_large", too_large_text(endpoint, limit))
    return body


def too_large_text(endpoint: str, limit: int) -> str:
    if endpoint == "batch":
        return (
            f"The batch is larger than {limit // KB} KB (uncompressed); "
            "send the messages in smaller batches."
        )
    return f"A {endpoint} call may be at most {limit // KB} KB (uncompressed)."


def body_json(body: bytes) -> dict:
    """The JSON object in ``body``, or ``RequestError`` (400)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(400, "invalid_json", "The body is not UTF-8 text.") from None
    except ValueError as exc:
        raise RequestError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise RequestError(400, "invalid_json", "The body must be a JSON object.")
    return data


def message_size(raw: Any) -> int:
    """Bytes of a message as compact UTF-8 JSON (what a sender's serializer produces at most)."""
    return len(json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode())


def time_parse(name: str, value: Any) -> datetime:
    """An ISO 8601 date-time with a time zone, or ``MessageError`` saying what is wrong."""
    if not isinstance(value, str):
        raise MessageError(f"{name} must be an ISO 8601 date-time string, not {_kind(value)}.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MessageError(f"{name} {value!r} is not an ISO 8601 date-time.") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise MessageError(
            f"{name} {value!r} has no time zone; timestamps must be timezone-aware "
            "(end it with 'Z' or an offset such as '+02:00')."
        )
    return parsed


def occurred_at_correct(
    timestamp: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """When the event happened on our clock: the spec's skew correction.

    ``timestamp + (receivedAt − sentAt)``: a client whose clock runs 10 minutes fast stamps
    both ``timestamp`` and ``sentAt`` 10 minutes ahead, and the difference cancels it. Without
    ``sentAt`` the timestamp is taken as is; without a timestamp, the time we received it.
    """
    if timestamp is None:
        return received_at
    if sent_at is None:
        return timestamp
    return timestamp + (received_at - sent_at)


def _kind(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _id(raw: dict, name: str, max_length: int = MAX_ID_LENGTH) -> str | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MessageError(f"{name} must be a string, not {_kind(value)}.")
    text = str(value)
    if len(text) > max_length:
        raise MessageError(f"{name} is longer than {max_length} characters.")
    return text


def _object(raw: dict, name: str) -> dict:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MessageError(f"{name} must be an object, not {_kind(value)}.")
    return value


def _value(properties: dict) -> Decimal | None:
    """The touchpoint value: the spec's ``revenue`` property, else ``value``."""
    for name in ("revenue", "value"):
        if properties.get(name) is None:
            continue
        raw = properties[name]
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise MessageError(f"properties.{name} must be a number, not {_kind(raw)}.")
        try:
            amount = Decimal(str(raw)).quantize(Decimal("0.01"))
        except InvalidOperation:
            raise MessageError(f"properties.{name} {raw!r} is not a number.") from None
        if not amount.is_finite() or abs(amount) > MAX_VALUE:
            raise MessageError(f"properties.{name} {raw!r} is out of range.")
        return amount
    return None


def message_id_derive(raw: dict) -> str:
    """A stable id for a message sent without ``messageId``: a hash of its content (minus the
    send time), so an identical resend is still recognised as a duplicate."""
    content = {k: v for k, v in raw.items() if k not in ("sentAt", "receivedAt", "writeKey")}
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()
    return f"sha256:{digest[:48]}"


def message_parse(
    raw: Any,
    *,
    kind: str | None,
    index: int | None,
    batch_sent_at: datetime | None,
    received_at: datetime,
    future_skew: timedelta,
) -> Message:
    """Validate one message and return it with its corrected time, or raise ``MessageError``.

    ``kind`` is the endpoint's call type; ``None`` inside a batch, where each message says its
    own ``type``. ``batch_sent_at`` is the batch's ``sentAt`` (a message's own wins).
    """
    if not isinstance(raw, dict):
        raise MessageError(f"A message must be a JSON object, not {_kind(raw)}.")
    if index is not None and (size := message_size(raw)) > MAX_MESSAGE_BYTES:
        raise MessageError(
            f"The message is {size:,} bytes; the limit is {MAX_MESSAGE_BYTES // KB} KB per message."
        )
    if kind is None:
        kind = raw.get("type")
        if kind not in KINDS:
            raise MessageError(f"type must be one of {', '.join(KINDS)}; got {kind!r}.")

    user_id = _id(raw, "userId")
    anonymous_id = _id(raw, "anonymousId", MAX_ANON_ID_LENGTH)
    if user_id is None and anonymous_id is None:
        raise MessageError("userId or anonymousId is required.")
    message_id = _id(raw, "messageId") or message_id_derive(raw)

    timestamp_name = "timestamp" if raw.get("timestamp") is not None else "originalTimestamp"
    timestamp = raw.get(timestamp_name)
    timestamp = time_parse(timestamp_name, timestamp) if timestamp is not None else None
    sent_at = time_parse("sentAt", raw["sentAt"]) if raw.get("sentAt") is not None else None
    try:
        occurred_at = occurred_at_correct(timestamp, sent_at or batch_sent_at, received_at)
    except OverflowError:
        raise MessageError(
            f"{timestamp_name} {raw.get(timestamp_name)!r} is out of range after clock-skew "
            "correction."
        ) from None
    ahead = occurred_at - received_at
    if ahead > future_skew:
        raise MessageError(
            f"{timestamp_name} {raw.get(timestamp_name)!r} is {_duration(ahead)} in the future "
            f"(after clock-skew correction); at most {_duration(future_skew)} ahead is accepted."
        )

    message = Message(
        index=index,
        kind=kind,
        message_id=message_id,
        occurred_at=occurred_at,
        user_id=user_id,
        anonymous_id=anonymous_id,
        raw=raw,
    )
    _object(raw, "context")
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or not event.strip():
            raise MessageError("track needs an event name (a non-empty string).")
        if len(event) > MAX_EVENT_NAME_LENGTH:
            raise MessageError(f"event is longer than {MAX_EVENT_NAME_LENGTH} characters.")
        message.event = event.strip()
        message.properties = _object(raw, "properties")
        message.value = _value(message.properties)
    elif kind in ("page", "screen"):
        message.event = PAGE_EVENT if kind == "page" else SCREEN_EVENT
        properties = dict(_object(raw, "properties"))
        for name in ("name", "category"):
            if raw.get(name) is not None:
                if not isinstance(raw[name], str):
                    raise MessageError(f"{name} must be a string, not {_kind(raw[name])}.")
                properties.setdefault(name, raw[name])
        message.properties = properties
        message.value = _value(properties)
    elif kind == "identify":
        from tracking.traits import traits_fields

        message.traits = _object(raw, "traits")
        message.fields = traits_fields(message.traits)
    elif kind == "group":
        message.group_id = _id(raw, "groupId")
        if message.group_id is None:
            raise MessageError("group needs a groupId.")
        message.traits = _object(raw, "traits")
        company = message.traits.get("name")
        if company not in (None, ""):
            if not isinstance(company, str) or len(company) > 200:
                raise MessageError("traits.name of a group must be a string of at most 200.")
            message.fields = {"company": company.strip()}
    elif kind == "alias":
        message.previous_id = _id(raw, "previousId", MAX_ANON_ID_LENGTH)
        if message.previous_id is None or user_id is None:
            raise MessageError("alias needs both previousId and userId.")
    return message


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"

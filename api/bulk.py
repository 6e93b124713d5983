"""Bulk touchpoint ingest: up to 10,000 validated items per call, set-based, idempotent.

Algorithm (one request):

1. Check the envelope (``mode``, ``source``, ``items``) — a malformed envelope rejects the
   whole call.
2. Resolve every distinct customer external id in one query and every type key from one
   read of the (small) type table: no per-item queries.
3. Validate each item in a plain loop (customer known, type known and active, timestamp aware
   and not beyond the allowed future skew, value a finite amount, key present); collect
   errors by item index. A (source, idempotency_key) repeated inside the batch keeps its first
   occurrence; later ones count as duplicates.
4. ``atomic`` with any error: write nothing. Otherwise insert the good rows in one statement
   that skips keys already stored and queues the inserted ones for the engine in the same
   statement (PostgreSQL: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` feeding the pending
   queue; SQLite: a key lookup then ``bulk_create`` + ``pending_record``, serialized by its
   write lock).

Unknown customers are rejected, not created: a typo in an id must not invent a customer.
Create customers first (``PUT /api/v1/customers/by-external-id/{id}/``); the Segment-style
tracking endpoints are the path that creates unidentified customers on first sight.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from api.timestamps import max_future_skew, timestamp_parse
from customers.engagement import pending_record
from customers.models import Customer, PendingTouchpoint, Touchpoint, TouchpointType

MAX_ITEMS = 10_000
MODES = ("atomic", "partial")
MAX_VALUE = Decimal("1e12")
CENT = Decimal("0.01")


class BulkRequestError(Exception):
    """The envelope itself is wrong; ``errors`` maps field names to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass
class BulkResult:
    mode: str
    received: int
    created: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    written: bool = False

    @property
    def rejected(self) -> int:
        return len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "received": self.received,
            "created": self.created,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors,
        }


@dataclass
class _Rows:
    customer_ids: list[int] = field(default_factory=list)
    type_ids: list[int] = field(default_factory=list)
    occurred: list[datetime] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    properties: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)


def _envelope(payload: Any) -> tuple[str, str, list]:
    if not isinstance(payload, dict):
        raise BulkRequestError(
            {"non_field_errors": ['Send a JSON object: {"mode": ..., "items": [...]}.']}
        )
    errors: dict[str, list[str]] = {}
    mode = payload.get("mode", "atomic")
    if mode not in MODES:
        errors["mode"] = ["Choose 'atomic' (all or nothing, the default) or 'partial'."]
    source = payload.get("source", "api")
    if not isinstance(source, str) or not 1 <= len(source) <= 64:
        errors["source"] = ["source must be a text of 1 to 64 characters."]
    elif "\x00" in source:
        errors["source"] = ["source contains a NUL character, which cannot be stored."]
    items = payload.get("items")
    if not isinstance(items, list):
        errors["items"] = ["items is required: a list of touchpoint objects."]
    elif not items:
        errors["items"] = ["items is empty: send at least one touchpoint."]
    elif len(items) > MAX_ITEMS:
        errors["items"] = [
            f"Too many items: {len(items):,}; send at most {MAX_ITEMS:,} per request."
        ]
    if errors:
        raise BulkRequestError(errors)
    return mode, source, items


def _value(raw: Any) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None, "value must be a number such as 12.50."
    try:
        amount = Decimal(str(raw))
    except InvalidOperation:
        return None, "value must be a number such as 12.50."
    if not amount.is_finite() or abs(amount) >= MAX_VALUE:
        return None, "value must be a finite amount below 1,000,000,000,000."
    return str(amount.quantize(CENT)), None


def _text(item: dict, name: str, max_length: int, *, required: bool) -> tuple[Any, str | None]:
    raw = item.get(name)
    if raw is None:
        return None, (f"{name} is required." if required else None)
    if not isinstance(raw, str) or not raw.strip():
        return None, f"{name} must be a non-empty text."
    if "\x00" in raw:
        return None, f"{name} contains a NUL character, which cannot be stored."
    if len(raw) > max_length:
        return None, f"{name} is longer than {max_length} characters."
    return raw, None


NUL_MESSAGE = "properties contain a NUL character (\\u0000), which cannot be stored."


def json_storable(value: Any) -> bool:
    """PostgreSQL's jsonb refuses the NUL character anywhere in a document (keys included)."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(json_storable(k) and json_storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(json_storable(v) for v in value)
    return True


def _customer_ids(external_ids: set[str]) -> dict[str, int]:
    if connection.vendor == "postgresql":
        # One array parameter instead of an IN list Django would build value by value.
        with _binary_cursor() as cursor:
            cursor.execute(
                f"SELECT external_id, id FROM {Customer._meta.db_table} "
                "WHERE external_id = ANY(%s)",
                [list(external_ids)],
                binary=True,
            )
            return dict(cursor.fetchall())
    return dict(
        Customer.objects.filter(external_id__in=external_ids).values_list("external_id", "id")
    )


def _binary_cursor():
    """A psycopg cursor on Django's connection with server-side binary binding: Django's
    default client-side binding renders every value into the SQL text, which for thousands
    of values costs more than the statement itself."""
    import psycopg

    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _validate(
    items: list, batch_source: str, now: datetime, result: BulkResult, *, check_nul: bool
) -> _Rows:
    """The rows to insert; errors and in-batch duplicates go to ``result``. ``check_nul``
    walks every item's properties for NUL characters; the caller skips that walk when the
    serialized properties show none (see ``touchpoints_bulk_ingest``)."""
    # Only ids that can exist are looked up (text, no NUL, at most 255 characters):
    # PostgreSQL refuses NUL in a query parameter, a non-text id (an object, a list) cannot
    # even go in a set, and such items get their own error below.
    external_ids = {
        e
        for e in (i.get("customer_external_id") for i in items if isinstance(i, dict))
        if isinstance(e, str) and "\x00" not in e and len(e) <= 255
    }
    customers = _customer_ids(external_ids)
    latest = now + max_future_skew()
    types = {t[0]: t[1:] for t in TouchpointType.objects.values_list("key", "id", "is_active")}
    rows = _Rows()
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            result.errors.append(
                {"index": index, "errors": {"non_field_errors": ["Each item must be an object."]}}
            )
            continue
        errors: dict[str, list[str]] = {}
        external_id, message = _text(item, "customer_external_id", 255, required=True)
        customer_id = None
        if message:
            errors["customer_external_id"] = [message]
        else:
            customer_id = customers.get(external_id)
            if customer_id is None:
                errors["customer_external_id"] = [
                    f"No customer with external_id {external_id!r}. Create it first with "
                    f"PUT /api/v1/customers/by-external-id/{external_id}/."
                ]
        type_key, message = _text(item, "type", 64, required=True)
        type_id = None
        if message:
            errors["type"] = [message]
        else:
            known = types.get(type_key)
            if known is None:
                errors["type"] = [
                    f"Unknown touchpoint type {type_key!r}; GET /api/v1/touchpoint-types/ "
                    "lists the keys."
                ]
            elif not known[1]:
                errors["type"] = [
                    f"Touchpoint type {type_key!r} is switched off; an admin can reactivate it."
                ]
            else:
                type_id = known[0]
        if "occurred_at" not in item:
            errors["occurred_at"] = ["occurred_at is required."]
            occurred = None
        else:
            occurred, message = timestamp_parse(item["occurred_at"], now=now, latest=latest)
            if message:
                errors["occurred_at"] = [message]
        value, message = _value(item.get("value"))
        if message:
            errors["value"] = [message]
        key, message = _text(item, "idempotency_key", 255, required=True)
        if message:
            errors["idempotency_key"] = [
                message + " Bulk items need the sender's event id so a retried batch "
                "creates nothing twice."
                if key is None and item.get("idempotency_key") is None
                else message
            ]
        source, message = _text(item, "source", 64, required=False)
        if message:
            errors["source"] = [message]
        properties = item.get("properties", {})
        if properties is None:
            properties = {}
        if not isinstance(properties, dict):
            errors["properties"] = ["properties must be a JSON object."]
        elif check_nul and properties and not json_storable(properties):
            errors["properties"] = [NUL_MESSAGE]
        if errors:
            result.errors.append({"index": index, "errors": errors})
            continue
        source = source or batch_source
        if (source, key) in seen:
            result.duplicates += 1
            continue
        seen.add((source, key))
        rows.customer_ids.append(customer_id)
        rows.type_ids.append(type_id)
        rows.occurred.append(occurred)
        rows.values.append(value)
        rows.sources.append(source)
        rows.keys.append(key)
        rows.properties.append(properties)
    return rows


_INSERT_POSTGRES = """
WITH inserted AS (
    INSERT INTO {touchpoint} (customer_id, type_id, occurred_at, value, source,
                              idempotency_key, properties, received_at)
    SELECT c, t, o, v, s, k, coalesce(p, '{{}}'::jsonb), %s
    FROM json_to_recordset(%s::json)
        AS r(c bigint, t bigint, o timestamptz, v numeric, s text, k text, p jsonb)
    ON CONFLICT (source, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, customer_id
)
INSERT INTO {pending} (touchpoint_id, customer_id) SELECT id, customer_id FROM inserted
"""


def _insert_postgres(document: str, now: datetime) -> int:
    """One statement; the rows travel as one JSON document that the server unpacks with
    ``json_to_recordset`` (C on both ends: ``json.dumps`` here, the JSON parser there), which
    profiles several times cheaper than binding thousands of values one by one."""
    sql = _INSERT_POSTGRES.format(
        touchpoint=Touchpoint._meta.db_table, pending=PendingTouchpoint._meta.db_table
    )
    with _binary_cursor() as cursor:
        cursor.execute(sql, [now, document])
        return cursor.rowcount


def _document(rows: _Rows) -> str:
    """The rows as one JSON array for ``json_to_recordset``."""
    return json.dumps(
        [
            {"c": c, "t": t, "o": o.isoformat(), "v": v, "s": s, "k": k, "p": p}
            for c, t, o, v, s, k, p in zip(
                rows.customer_ids,
                rows.type_ids,
                rows.occurred,
                rows.values,
                rows.sources,
                rows.keys,
                rows.properties,
                strict=True,
            )
        ],
        separators=(",", ":"),
    )


def _insert_portable(rows: _Rows, now: datetime) -> int:
    stored = set(
        Touchpoint.objects.filter(idempotency_key__in=set(rows.keys)).values_list(
            "source", "idempotency_key"
        )
    )
    new = [
        Touchpoint(
            customer_id=rows.customer_ids[i],
            type_id=rows.type_ids[i],
            occurred_at=rows.occurred[i],
            value=None if rows.values[i] is None else Decimal(rows.values[i]),
            source=rows.sources[i],
            idempotency_key=rows.keys[i],
            properties=rows.properties[i],
        )
        for i in range(len(rows))
        if (rows.sources[i], rows.keys[i]) not in stored
    ]
    created = Touchpoint.objects.bulk_create(new, batch_size=2_000)
    pending_record([t.pk for t in created], [t.customer_id for t in created])
    return len(created)


def touchpoints_bulk_ingest(*, payload: Any, now: datetime | None = None) -> BulkResult:
    """Validate and store a bulk request (see the module docstring for the semantics).

    Raises ``BulkRequestError`` for a malformed envelope. Returns the counts and per-item
    errors; ``result.written`` is False when ``atomic`` mode refused the batch.
    """
    now = now or timezone.now()
    mode, source, items = _envelope(payload)
    result = BulkResult(mode=mode, received=len(items))
    # One C-speed scan of every item's properties serialized together instead of a walk per
    # item; only when it finds an escaped NUL (rare) is each item's properties walked.
    properties = [i.get("properties") for i in items if isinstance(i, dict)]
    check_nul = "\\u0000" in json.dumps(properties)
    rows = _validate(items, source, now, result, check_nul=check_nul)
    postgres = connection.vendor == "postgresql"
    if mode == "atomic" and result.errors:
        result.duplicates = 0
        return result
    if rows:
        with transaction.atomic():
            if postgres:
                created = _insert_postgres(_document(rows), now)
            else:
                created = _insert_portable(rows, now)
        result.created = created
        result.duplicates += len(rows) - created
    result.written = True
    return result

"""Writes of the tracking API: sources and write keys, ingest of validated messages, event
mappings and the backfill of events stored while their name had no mapping.

Ingest contract (see BRIEF / customers.engagement): touchpoints are inserted set-based and
queued for the engine with ``pending_record`` in the same transaction; customers created on
the way get their engine rows with ``engine_rows_ensure`` in that transaction too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import JSONField, Model
from django.utils import timezone
from django.utils.text import slugify

from customers.engagement import engine_rows_ensure, pending_record
from customers.models import Customer, PendingTouchpoint, Touchpoint, TouchpointType
from tracking.messages import ANON_PREFIX, Message, MessageError
from tracking.models import (
    CustomerAlias,
    EventMapping,
    RejectedMessage,
    Source,
    UnmappedEvent,
    WriteKey,
)
from tracking.traits import traits_apply

KEY_PREFIX = "lcwk_"
INSERT_CHUNK = 1_000  # rows per INSERT statement: well under SQLite's 32,766 parameters
UNNEST_CHUNK = 10_000  # rows per INSERT … SELECT FROM unnest(…) on PostgreSQL
BACKFILL_CHUNK = 5_000
LIGHT_FIELDS = ("id", "external_id", "is_identified")  # what finding a customer reads
# Profile columns a customer created by two requests at once takes from the losing request.
RACED_TEXT_COLUMNS = ("email", "name", "company", "plan", "region")
NEW_CUSTOMER_COLUMNS = (
    "external_id",
    *RACED_TEXT_COLUMNS,
    "spend_tier",
    "signup_date",
    "lifetime_revenue",
    "email_opt_out",
    "is_identified",
    "traits",
    "created_at",
    "updated_at",
)
LAST_USED_PRECISION = timedelta(minutes=1)  # write last_used_at at most once a minute


# --- sources and write keys ----------------------------------------------------------------


def _key_hash(key: str) -> str:
    # Keys are 256-bit random strings, so a fast hash is enough (no password stretching).
    return hashlib.sha256(key.encode()).hexdigest()


def write_key_add(*, source: Source, user: Any = None) -> tuple[WriteKey, str]:
    """A new write key for ``source``; returns the row and the key, which is never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = WriteKey.objects.create(
        source=source, prefix=key[:12], key_hash=_key_hash(key), created_by=user
    )
    return row, key


def source_create(*, name: str, user: Any = None) -> tuple[Source, str]:
    """A new source with its first write key (returned once, in clear)."""
    name = name.strip()
    base = slugify(name)[:56] or "source"
    slug, n = base, 1
    while Source.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    with transaction.atomic():
        source = Source.objects.create(name=name, slug=slug, created_by=user)
        _, key = write_key_add(source=source, user=user)
    return source, key


def write_key_revoke(*, key: WriteKey) -> None:
    """Stop accepting ``key`` from now on (revoking twice keeps the first time)."""
    WriteKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def source_authenticate(authorization: str) -> Source | None:
    """The source whose live write key is in an HTTP Basic ``Authorization`` header (key as
    user name, empty password: what Segment's libraries send), or None."""
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key = decoded.partition(":")[0]
    if not key:
        return None
    row = (
        WriteKey.objects.select_related("source")
        .filter(key_hash=_key_hash(key), revoked_at__isnull=True)
        .first()
    )
    if row is None:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        WriteKey.objects.filter(pk=row.pk).update(last_used_at=now)
    return row.source


# --- set-based inserts ---------------------------------------------------------------------


def _insert_ignoring_duplicates(
    model: type[Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    returning: str,
    *,
    queue_for_engine: bool = False,
) -> list[tuple]:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING``: rows violating a unique constraint are
    skipped, and ``returning`` comes back for the rows actually inserted (PostgreSQL and
    SQLite ≥ 3.35 share this syntax)."""
    if not rows:
        return []
    meta = model._meta
    fields = [meta.get_field(c) for c in columns]
    qn = connection.ops.quote_name
    column_sql = ", ".join(qn(f.column) for f in fields)
    if connection.vendor == "postgresql":
        return _insert_unnest(
            meta.db_table, fields, column_sql, rows, returning, queue_for_engine=queue_for_engine
        )
    inserted: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            params: list[Any] = []
            for row in chunk:
                params.extend(
                    f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)
                )
            one = "(" + ", ".join(["%s"] * len(fields)) + ")"
            cursor.execute(
                f"INSERT INTO {qn(meta.db_table)} ({column_sql}) VALUES "
                f"{', '.join([one] * len(chunk))} ON CONFLICT DO NOTHING RETURNING {returning}",
                params,
            )
            inserted.extend(cursor.fetchall())
    return inserted


def _insert_unnest(
    table: str,
    fields: list,
    column_sql: str,
    rows: Sequence[Sequence[Any]],
    returning: str,
    *,
    queue_for_engine: bool = False,
) -> list[tuple]:
    """PostgreSQL: the rows as one array parameter per column, ``unnest``-ed into the INSERT,
    so a 2,000-row batch is one short statement with a few parameters (not 16,000).

    ``queue_for_engine`` (touchpoints only) also inserts the engine's queue rows for the
    inserted touchpoints in the same statement, set-based — what ``pending_record`` does,
    without building a model object per row (the BRIEF allows this on PostgreSQL).
    """
    qn = connection.ops.quote_name
    inserted: list[tuple] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), UNNEST_CHUNK):
            chunk = rows[start : start + UNNEST_CHUNK]
            params, arrays, selects = [], [], []
            for i, (f, values) in enumerate(zip(fields, zip(*chunk, strict=True), strict=True)):
                if isinstance(f, JSONField):  # sent as text, cast once in SQL
                    params.append([json.dumps(v) for v in values])
                    arrays.append("%s::text[]")
                    selects.append(f"c{i}::jsonb")
                else:
                    params.append(list(values))
                    arrays.append(f"%s::{f.db_type(connection)}[]")
                    selects.append(f"c{i}")
            names = ", ".join(f"c{i}" for i in range(len(fields)))
            sql = (
                f"INSERT INTO {qn(table)} ({column_sql}) SELECT {', '.join(selects)} "
                f"FROM unnest({', '.join(arrays)}) AS u({names}) "
                f"ON CONFLICT DO NOTHING RETURNING {returning}"
            )
            if queue_for_engine:
                queue = qn(PendingTouchpoint._meta.db_table)
                sql = (
                    f"WITH inserted AS ({sql}), queued AS (INSERT INTO {queue} "
                    "(touchpoint_id, customer_id) SELECT id, customer_id FROM inserted) "
                    f"SELECT {returning} FROM inserted"
                )
            cursor.execute(sql, params)
            inserted.extend(cursor.fetchall())
    return inserted


TOUCHPOINT_COLUMNS = (
    "customer",
    "type",
    "occurred_at",
    "value",
    "source",
    "idempotency_key",
    "properties",
    "received_at",
)


def _touchpoints_insert(rows: Sequence[Sequence[Any]]) -> int:
    """Insert touchpoint rows (``TOUCHPOINT_COLUMNS``), skip known idempotency keys, and queue
    the new ones for the engine. Call inside the ingest transaction. Returns rows created."""
    if connection.vendor == "postgresql":
        created = _insert_ignoring_duplicates(
            Touchpoint, TOUCHPOINT_COLUMNS, rows, "id, customer_id", queue_for_engine=True
        )
    else:
        created = _insert_ignoring_duplicates(
            Touchpoint, TOUCHPOINT_COLUMNS, rows, "id, customer_id"
        )
        if created:
            pending_record([r[0] for r in created], [r[1] for r in created])
    return len(created)


def _touchpoint_properties(event: str, properties: dict) -> dict:
    return {"event": event, "properties": properties}


# --- who a message is about ----------------------------------------------------------------


def anon_key(anonymous_id: str) -> str:
    """The external id of a customer known only by an ``anonymousId``."""
    return ANON_PREFIX + anonymous_id


def _candidate_keys(message: Message) -> set[str]:
    keys = set()
    if message.user_id:
        keys.add(message.user_id)
    if message.anonymous_id:
        keys.add(anon_key(message.anonymous_id))
    if message.previous_id:
        keys.update((message.previous_id, anon_key(message.previous_id)))
    return keys


class _Resolver:
    """Finds or creates the customer of every message of a request, with a constant number
    of queries; writes happen in ``save``.

    Rules: a ``userId`` names the customer. A customer known only by an ``anonymousId`` (external
    id ``anon:<id>``) is re-keyed to the ``userId`` the first time a message carries both (its
    history stays with it); its old key becomes an alias. An ``alias`` call re-keys the
    ``previousId``'s customer to the ``userId`` when that user is new, and otherwise merges an
    anonymous profile into the user's (two identified customers are never merged).
    """

    def __init__(self, messages: Iterable[Message]) -> None:
        keys: set[str] = set()
        for message in messages:
            keys |= _candidate_keys(message)
        # Only what resolving needs; ``load_full`` completes those whose traits change.
        light = Customer.objects.only(*LIGHT_FIELDS)
        self.by_key: dict[str, Customer] = {
            c.external_id: c for c in light.filter(external_id__in=keys)
        }
        alias_rows = list(
            CustomerAlias.objects.filter(alias__in=keys).values_list("alias", "customer_id")
        )
        by_id = {c.pk: c for c in self.by_key.values()}
        by_id.update(light.in_bulk({cid for _, cid in alias_rows} - set(by_id)))
        self.aliases: dict[str, Customer] = {
            alias: by_id[cid] for alias, cid in alias_rows if cid in by_id
        }
        self.new: list[Customer] = []
        self.changed: dict[int, Customer] = {}  # existing customers to write back, by id
        self.rekeyed: dict[int, Customer] = {}  # existing customers with a new external id
        self.new_aliases: dict[str, Customer] = {}
        self.merges: list[tuple[Customer, Customer]] = []
        self.new_with_traits: set[int] = set()  # id() of new customers identify/group changed

    def find(self, key: str | None) -> Customer | None:
        if key is None:
            return None
        return self.by_key.get(key) or self.aliases.get(key)

    def resolve(self, message: Message) -> Customer:
        """The message's customer; raises ``MessageError`` for an alias that cannot apply."""
        anon = anon_key(message.anonymous_id) if message.anonymous_id else None
        if message.kind == "alias":
            return self._alias(message)
        if message.user_id is None:
            return self.find(anon) or self._create(anon, message)
        customer = self.find(message.user_id)
        if customer is None:
            anonymous = self.find(anon)
            if (
                anonymous is not None
                and not anonymous.is_identified
                and anonymous.external_id == anon
            ):
                customer = self._rekey(anonymous, message.user_id)
            else:
                customer = self._create(message.user_id, message)
        if anon and self.find(anon) is None:
            self._alias_add(anon, customer)
        return customer

    def _alias(self, message: Message) -> Customer:
        previous_id, user_id = message.previous_id, message.user_id
        target = self.find(user_id)
        previous = self.find(previous_id) or self.find(anon_key(previous_id))
        if previous is None:
            target = target or self._create(user_id, message)
            for key in (previous_id, anon_key(previous_id)):
                self._alias_add(key, target)
            return target
        if target is None:
            return self._rekey(previous, user_id)
        if previous is target:
            return target
        if previous.is_identified:
            raise MessageError(
                f"alias would merge two identified customers ({previous.external_id!r} into "
                f"{user_id!r}); merge them by hand."
            )
        self.merges.append((previous, target))
        for key, customer in list(self.by_key.items()):
            if customer is previous:
                self.by_key[key] = target
        for key, customer in list(self.aliases.items()):
            if customer is previous:
                self.aliases[key] = target
        self._alias_add(previous.external_id, target)
        return target

    def _create(self, key: str, message: Message) -> Customer:
        customer = Customer(
            external_id=key,
            is_identified=False,
            signup_date=message.occurred_at.date(),
            traits={},
        )
        self.by_key[key] = customer
        self.new.append(customer)
        return customer

    def _rekey(self, customer: Customer, new_key: str) -> Customer:
        old_key = customer.external_id
        if self.by_key.get(old_key) is customer:
            del self.by_key[old_key]
        self.aliases[old_key] = customer
        self.new_aliases[old_key] = customer
        customer.external_id = new_key
        self.by_key[new_key] = customer
        if customer.pk is not None:
            self.rekeyed[customer.pk] = customer
        return customer

    def _alias_add(self, key: str, customer: Customer) -> None:
        if key not in self.aliases and key not in self.by_key:
            self.aliases[key] = customer
            self.new_aliases[key] = customer

    def mark_changed(self, customer: Customer) -> None:
        if customer.pk is not None:
            self.changed[customer.pk] = customer
        else:
            self.new_with_traits.add(id(customer))

    def load_full(self, customers: Iterable[Customer]) -> None:
        """Load the columns left out at first for existing ``customers`` (one query)."""
        partial = [c for c in customers if c.pk is not None and c.get_deferred_fields()]
        if not partial:
            return
        full = Customer.objects.in_bulk({c.pk for c in partial})
        for customer in partial:
            for attname in customer.get_deferred_fields():
                setattr(customer, attname, getattr(full[customer.pk], attname))

    def save(self) -> int:
        """Write re-keys, trait changes, new customers (with engine rows) and aliases.

        New customers are inserted ignoring duplicates and then read back by external id, so
        two requests creating the same customer at once both end up with the one row.
        Returns how many customers this call created.
        """
        now = timezone.now()
        rekeyed_only = [c for pk, c in self.rekeyed.items() if pk not in self.changed]
        if rekeyed_only:
            for customer in rekeyed_only:
                customer.updated_at = now
            Customer.objects.bulk_update(rekeyed_only, ["external_id", "updated_at"])
        if self.changed:
            for customer in self.changed.values():
                customer.updated_at = now
            Customer.objects.bulk_update(
                list(self.changed.values()),
                [
                    "external_id",
                    "email",
                    "name",
                    "company",
                    "plan",
                    "region",
                    "spend_tier",
                    "signup_date",
                    "is_identified",
                    "traits",
                    "updated_at",
                ],
                batch_size=500,
            )
        created = 0
        if self.new:
            created = self._insert_new(now)
        if self.new_aliases:
            CustomerAlias.objects.bulk_create(
                [CustomerAlias(alias=k, customer_id=c.pk) for k, c in self.new_aliases.items()],
                ignore_conflicts=True,
            )
        return created

    def _insert_new(self, now: datetime) -> int:
        """Insert new customers, skipping external ids another request created meanwhile (its
        row wins; traits this request set are then merged into it). Returns rows inserted."""
        rows = [
            [getattr(c, column) for column in NEW_CUSTOMER_COLUMNS[:-2]] + [now, now]
            for c in self.new
        ]
        inserted = dict(
            _insert_ignoring_duplicates(Customer, NEW_CUSTOMER_COLUMNS, rows, "external_id, id")
        )
        raced = [c for c in self.new if c.external_id not in inserted]
        if raced:
            theirs = {
                c.external_id: c
                for c in Customer.objects.filter(external_id__in=[c.external_id for c in raced])
            }
            merged = []
            for ours in raced:
                row = theirs[ours.external_id]
                if id(ours) in self.new_with_traits:
                    for column in RACED_TEXT_COLUMNS:
                        if getattr(ours, column):
                            setattr(row, column, getattr(ours, column))
                    row.traits = {**(row.traits or {}), **(ours.traits or {})}
                    row.is_identified = row.is_identified or ours.is_identified
                    row.updated_at = now
                    merged.append(row)
                inserted[ours.external_id] = row.pk
            Customer.objects.bulk_update(
                merged, [*RACED_TEXT_COLUMNS, "is_identified", "traits", "updated_at"]
            )
        for customer in self.new:
            customer.pk = inserted[customer.external_id]
            customer._state.adding = False
        engine_rows_ensure([c.pk for c in self.new])
        return len(self.new) - len(raced)


def customer_merge(*, source: Customer, into: Customer) -> int:
    """Move everything of an anonymous ``source`` customer to ``into`` and delete ``source``.

    Touchpoints change owner and are queued again for the engine under their new customer
    (their old pending rows are replaced), so ``into``'s score gains them through the same
    O(1) path as new ingest; ``source``'s engine state goes with it. Blank columns of ``into``
    are filled from ``source``; traits merge with ``into`` winning. Returns touchpoints moved.
    """
    with transaction.atomic():
        moved = list(Touchpoint.objects.filter(customer_id=source.pk).values_list("id", flat=True))
        if moved:
            PendingTouchpoint.objects.filter(touchpoint_id__in=moved).delete()
            Touchpoint.objects.filter(id__in=moved).update(customer_id=into.pk)
            pending_record(moved, [into.pk] * len(moved))
        UnmappedEvent.objects.filter(customer_id=source.pk).update(customer_id=into.pk)
        CustomerAlias.objects.filter(customer_id=source.pk).update(customer_id=into.pk)
        for column in ("email", "name", "company", "plan", "region"):
            if not getattr(into, column) and getattr(source, column):
                setattr(into, column, getattr(source, column))
        into.traits = {**(source.traits or {}), **(into.traits or {})}
        into.signup_date = min(into.signup_date, source.signup_date)
        into.save()
        source_key = source.external_id
        Customer.objects.filter(pk=source.pk).delete()
        CustomerAlias.objects.get_or_create(alias=source_key, defaults={"customer": into})
    return len(moved)


# --- ingest --------------------------------------------------------------------------------


@dataclass
class Rejection:
    index: int | None
    message_id: str
    error: str
    payload: Any = None

    def as_dict(self) -> dict:
        return {"index": self.index, "messageId": self.message_id, "error": self.error}


@dataclass
class IngestResult:
    accepted: int = 0
    touchpoints_created: int = 0
    duplicates: int = 0
    unmapped_stored: int = 0
    customers_created: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "touchpoints_created": self.touchpoints_created,
            "duplicates": self.duplicates,
            "unmapped_stored": self.unmapped_stored,
            "customers_created": self.customers_created,
            "rejected": [r.as_dict() for r in self.rejected],
        }


REJECTED_PAYLOAD_BYTES = 4_096


def _payload_for_record(payload: Any) -> Any:
    text = json.dumps(payload, default=str)
    if len(text) <= REJECTED_PAYLOAD_BYTES:
        return payload
    return {"truncated": text[:REJECTED_PAYLOAD_BYTES]}


def rejections_record(
    *, source: Source, endpoint: str, rejections: Sequence[Rejection], received_at: datetime
) -> None:
    """Keep refused messages for the admin screen (payloads cut to 4 KB)."""
    RejectedMessage.objects.bulk_create(
        [
            RejectedMessage(
                source=source,
                received_at=received_at,
                endpoint=endpoint,
                index=r.index,
                message_id=(r.message_id or "")[:255],
                error=r.error,
                payload=_payload_for_record(r.payload),
            )
            for r in rejections
        ]
    )


EVENT_KINDS = ("track", "page", "screen")


def tracking_ingest(
    *,
    source: Source,
    endpoint: str,
    messages: Sequence[Message],
    rejections: Sequence[Rejection] = (),
    received_at: datetime,
) -> IngestResult:
    """Apply validated messages of one request in one transaction, set-based.

    1. find or create every message's customer (``_Resolver``: two queries, one insert);
    2. apply ``identify`` / ``group`` traits in message order, write customers back;
    3. events (``track``, ``page``, ``screen``) with a mapped name become touchpoints (one
       ``INSERT … ON CONFLICT DO NOTHING`` per 1,000 rows, so a repeated ``messageId`` creates
       nothing) queued for the engine; unmapped ones are stored for the admin to map;
    4. ``alias`` merges run last, so they also move what this request just added;
    5. refused messages (``rejections``, plus aliases refused in step 1) are recorded.

    Nothing is half-applied: any database error rolls the whole request back, and the sender
    retries it (duplicates are then recognised by ``messageId``).
    """
    result = IngestResult(rejected=list(rejections))
    with transaction.atomic():
        resolver = _Resolver(messages)
        kept: list[tuple[Message, Customer]] = []
        for message in messages:
            try:
                kept.append((message, resolver.resolve(message)))
            except MessageError as exc:
                result.rejected.append(
                    Rejection(message.index, message.message_id, str(exc), message.raw)
                )
        resolver.load_full(
            [c for m, c in kept if m.kind in ("identify", "group")]
            + [c for pair in resolver.merges for c in pair]
        )
        for message, customer in kept:
            if message.kind not in ("identify", "group"):
                continue
            traits = message.traits
            if message.kind == "group":
                traits = {"group": {"id": message.group_id, **message.traits}}
            traits_apply(customer, traits, message.fields)
            if message.kind == "identify" and message.user_id:
                customer.is_identified = True
            resolver.mark_changed(customer)
        result.customers_created = resolver.save()

        mapping = dict(EventMapping.objects.values_list("event_name", "type_id"))
        touchpoint_rows: list[tuple] = []
        unmapped_rows: list[tuple] = []
        for message, customer in kept:
            if message.kind not in EVENT_KINDS:
                continue
            type_id = mapping.get(message.event)
            if type_id is not None:
                touchpoint_rows.append(
                    (
                        customer.pk,
                        type_id,
                        message.occurred_at,
                        message.value,
                        source.slug,
                        message.message_id,
                        _touchpoint_properties(message.event, message.properties),
                        received_at,
                    )
                )
            else:
                unmapped_rows.append(
                    (
                        source.pk,
                        message.message_id,
                        message.event,
                        message.kind,
                        customer.pk,
                        message.occurred_at,
                        received_at,
                        message.value,
                        message.properties,
                    )
                )
        result.touchpoints_created = _touchpoints_insert(touchpoint_rows)
        stored = _insert_ignoring_duplicates(
            UnmappedEvent,
            (
                "source",
                "message_id",
                "event_name",
                "kind",
                "customer",
                "occurred_at",
                "received_at",
                "value",
                "properties",
            ),
            unmapped_rows,
            "id",
        )
        result.unmapped_stored = len(stored)
        result.duplicates = (
            len(touchpoint_rows) - result.touchpoints_created + len(unmapped_rows) - len(stored)
        )
        for previous, target in resolver.merges:
            customer_merge(source=previous, into=target)
        result.accepted = len(kept)
        if result.rejected:
            rejections_record(
                source=source,
                endpoint=endpoint,
                rejections=result.rejected,
                received_at=received_at,
            )
    return result


# --- event mappings and backfill -----------------------------------------------------------


def event_mapping_save(
    *, event_name: str, type: TouchpointType, user: Any = None
) -> tuple[EventMapping, int]:
    """Map an event name to a touchpoint type; events of that name stored while it was
    unmapped are converted by a background backfill once this commits.

    Changing an existing mapping affects events from now on; touchpoints already recorded keep
    their type. Returns the mapping and how many stored events wait for the backfill.
    """
    from tracking.tasks import backfill_enqueue

    event_name = event_name.strip()
    with transaction.atomic():
        mapping, _ = EventMapping.objects.update_or_create(
            event_name=event_name, defaults={"type": type, "updated_by": user}
        )
        waiting = UnmappedEvent.objects.filter(event_name=event_name).count()
        if waiting:
            backfill_enqueue(event_name)
    return mapping, waiting


def event_mapping_delete(*, mapping: EventMapping) -> None:
    """Stop mapping the name: its events are stored as unmapped again from now on."""
    mapping.delete()


def unmapped_backfill(*, event_name: str | None = None, chunk: int = BACKFILL_CHUNK) -> int:
    """Turn stored events whose name now has a mapping into touchpoints, ``chunk`` at a time.

    Each chunk is one transaction: rows claimed with ``SKIP LOCKED`` (two backfills share the
    work), touchpoints inserted with their original ``messageId`` (a message also sent again
    after the mapping existed is not doubled), queued for the engine, stored rows deleted.
    ``event_name`` limits it to one name; None converts every mapped name. Returns touchpoints
    created.
    """
    mapping = dict(EventMapping.objects.values_list("event_name", "type_id"))
    names = [event_name] if event_name is not None else list(mapping)
    names = [n for n in names if n in mapping]
    created = 0
    while names:
        with transaction.atomic():
            rows = list(
                UnmappedEvent.objects.filter(event_name__in=names)
                .select_for_update(skip_locked=True, of=("self",))
                .order_by("id")
                .values_list(
                    "id",
                    "customer_id",
                    "event_name",
                    "occurred_at",
                    "value",
                    "source__slug",
                    "message_id",
                    "properties",
                    "received_at",
                )[:chunk]
            )
            if not rows:
                break
            created += _touchpoints_insert(
                [
                    (
                        customer_id,
                        mapping[name],
                        occurred_at,
                        value,
                        slug,
                        message_id,
                        _touchpoint_properties(name, properties),
                        received_at,
                    )
                    for (
                        _,
                        customer_id,
                        name,
                        occurred_at,
                        value,
                        slug,
                        message_id,
                        properties,
                        received_at,
                    ) in rows
                ]
            )
            UnmappedEvent.objects.filter(id__in=[r[0] for r in rows]).delete()
    return created

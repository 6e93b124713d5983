"""Touchpoint imports: the database checks over staged rows, and applying them.

Applying inserts the touchpoints and queues them for the engine in the same transaction
(the engine contract): on PostgreSQL ``INSERT … SELECT … RETURNING`` (with ``ON CONFLICT DO
NOTHING`` only where a conflict is possible, see ``_apply_postgres``) feeding ``INSERT INTO
customers_pendingtouchpoint``, one statement per chunk of staged rows, all in one
transaction; on SQLite ``INSERT … SELECT … RETURNING`` per batch + ``pending_record``.
``(source, id)`` makes a re-import create nothing new: rows whose id is already stored under
the source, or repeated in the file, count as duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg.errors
from django.db import IntegrityError, connection, reset_queries, transaction
from django.utils import timezone

from customers.engagement import pending_record
from customers.models import Customer, PendingTouchpoint, Touchpoint, TouchpointType
from imports.rows import TouchpointRows
from imports.staging import Staging

SQLITE_BATCH = 5_000
APPLY_CHUNK = 250_000  # staged rows per INSERT statement on PostgreSQL (all in one transaction)
APPLY_WORK_MEM = "64MB"  # sorting one chunk by customer and time stays in memory


@dataclass(frozen=True)
class Applied:
    created: int
    updated: int
    duplicates: int


def row_checker(positions: dict[str, int], *, now: datetime, skew: timedelta) -> TouchpointRows:
    type_ids = dict(TouchpointType.objects.values_list("key", "id"))
    return TouchpointRows(positions, type_ids=type_ids, now=now, skew=skew)


def validate(staging: Staging) -> None:
    """Record rows whose customer does not exist (one anti-join)."""
    customers = Customer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {staging.errors} (row_no, col, value, message) "
            f"SELECT s.row_no, 'customer_external_id', s.customer_external_id, "
            f"'customer_external_id matches no customer (import the customers first)' "
            f"FROM {staging.table} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {customers} c WHERE c.external_id = s.customer_external_id)"
        )


def apply(staging: Staging, *, source: str, rows_ok: int) -> Applied:
    """Insert the staged rows that passed every check; call inside a transaction."""
    if connection.vendor == "postgresql":
        created = _apply_postgres(staging, source=source)
    else:
        created = _apply_batched(staging, source=source)
    return Applied(created=created, updated=0, duplicates=rows_ok - created)


def _apply_postgres(staging: Staging, *, source: str) -> int:
    """One ``INSERT … SELECT`` per chunk of staged rows, all in the caller's transaction.

    1. A file without ids cannot conflict: plain inserts.
    2. A file with ids under a source that has none stored yet (a first import, a backfill)
       cannot conflict with stored rows either, only with itself or a concurrent writer:
       plain inserts, each chunk in a savepoint. ``ON CONFLICT`` costs a speculative
       insertion per row (about a third of the statement, measured); a unique violation —
       an id repeated in the file, or the same id sent meanwhile by another path — rolls
       the chunk back to its savepoint and redoes it, and every later chunk, with it.
    3. Otherwise (a re-import, a source the API also feeds): ``ON CONFLICT DO NOTHING``.
    """
    has_ids = staging.has_values("event_id")
    conflicts_possible = has_ids and _source_has_keys(source)
    created = 0
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        cursor.execute(f"SET LOCAL work_mem = '{APPLY_WORK_MEM}'")
        # Customer and type references are checked once per chunk, set-based, by the
        # touchpoint table's statement triggers (customers migration 0010).
        for first, last in staging.row_ranges(APPLY_CHUNK):
            if has_ids and not conflicts_possible:
                try:
                    with transaction.atomic():  # a savepoint inside the import's transaction
                        created += _insert_chunk(cursor, staging, source, first, last, False)
                    continue
                except IntegrityError as exc:
                    if not isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
                        raise
                    conflicts_possible = True
            created += _insert_chunk(cursor, staging, source, first, last, conflicts_possible)
    return created


def _source_has_keys(source: str) -> bool:
    return Touchpoint.objects.filter(source=source, idempotency_key__isnull=False).exists()


def _insert_chunk(cursor, staging: Staging, source: str, first: int, last: int, skip_stored):
    """Insert staged rows ``first``..``last`` and queue them for the engine (one statement).

    Rows with an unknown customer drop out of the join (in all-or-nothing mode there are
    none by now). Customer/time order keeps the (customer, occurred_at) index inserts local.
    Only inserted rows reach RETURNING, hence the queue.
    """
    on_conflict = (
        "ON CONFLICT (source, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        if skip_stored
        else ""
    )
    cursor.execute(
        f"""
        WITH inserted AS (
            INSERT INTO {Touchpoint._meta.db_table} (customer_id, type_id, occurred_at, value,
                source, idempotency_key, properties, received_at)
            SELECT c.id, s.type_id, s.occurred_at, s.value, %s, s.event_id,
                COALESCE(s.properties, '{{}}'::jsonb), now()
            FROM {staging.table} s
            JOIN {Customer._meta.db_table} c ON c.external_id = s.customer_external_id
            WHERE s.row_no BETWEEN %s AND %s
            ORDER BY c.id, s.occurred_at
            {on_conflict}
            RETURNING id, customer_id
        )
        INSERT INTO {PendingTouchpoint._meta.db_table} (touchpoint_id, customer_id)
        SELECT id, customer_id FROM inserted
        """,
        [source, first, last],
    )
    return cursor.rowcount


def _apply_batched(staging: Staging, *, source: str) -> int:
    """SQLite: one ``INSERT … SELECT … RETURNING`` per batch of staged rows, each batch's new
    touchpoints queued with ``pending_record`` (staged times are already in Django's SQLite
    format, see ``Staging``)."""
    touchpoints = Touchpoint._meta.db_table
    customers = Customer._meta.db_table
    received = str(timezone.now().astimezone(UTC).replace(tzinfo=None))
    created = 0
    for first, last in staging.row_ranges(SQLITE_BATCH):
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                INSERT INTO {touchpoints} (customer_id, type_id, occurred_at, value, source,
                    idempotency_key, properties, received_at)
                SELECT c.id, s.type_id, s.occurred_at, s.value, %s, s.event_id,
                    COALESCE(s.properties, '{{}}'), %s
                FROM {staging.table} s
                JOIN {customers} c ON c.external_id = s.customer_external_id
                WHERE s.row_no BETWEEN %s AND %s
                ORDER BY s.row_no
                ON CONFLICT (source, idempotency_key) WHERE idempotency_key IS NOT NULL
                DO NOTHING
                RETURNING id, customer_id
                """,
                [source, received, first, last],
            )
            inserted = cursor.fetchall()
        if inserted:
            pending_record([row[0] for row in inserted], [row[1] for row in inserted])
        created += len(inserted)
        reset_queries()  # DEBUG would keep each batch's SQL
    return created

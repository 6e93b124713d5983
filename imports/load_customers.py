"""Customer imports: upsert by external id, over staged rows.

Empty cells (and absent columns) leave a customer's current value alone; new customers get
the model's defaults. ``traits`` are merged into the stored traits. New customers get the
engine's rows in the same transaction (``engine_rows_ensure``, the engine contract).
Counts: created, updated, and unchanged (rows that matched a customer already up to date,
reported as duplicates).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection, reset_queries
from django.utils import timezone

from customers.engagement import engine_rows_ensure
from customers.models import Customer
from imports.load_touchpoints import Applied
from imports.rows import CustomerRows
from imports.staging import Staging

SQLITE_BATCH = 1_000
ENGINE_BATCH = 10_000
# Staged column → model field, for the columns an upsert may change.
FIELDS = (
    "email",
    "name",
    "company",
    "plan",
    "region",
    "spend_tier",
    "lifetime_revenue",
    "signup_date",
    "renewal_date",
    "owner_id",
    "email_opt_out",
)
DEFAULTS = {
    "email": "''",
    "name": "''",
    "company": "''",
    "plan": "''",
    "region": "''",
    "spend_tier": "'low'",
    "lifetime_revenue": "0",
    "signup_date": "CURRENT_DATE",  # never used: a new customer without one is a row error
    "renewal_date": "NULL",
    "owner_id": "NULL",
    "email_opt_out": "false",
}


def row_checker(positions: dict[str, int], **_: object) -> CustomerRows:
    owners = dict(
        get_user_model().objects.filter(is_staff=True, is_active=True).values_list("username", "id")
    )
    return CustomerRows(positions, owner_ids=owners)


def validate(staging: Staging) -> None:
    """Record repeated external ids (one row per customer) and new customers without a
    signup date."""
    customers = Customer._meta.db_table
    s, e = staging.table, staging.errors
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {e} (row_no, col, value, message) "
            f"SELECT s.row_no, 'external_id', s.external_id, "
            f"'external_id repeats row ' || d.first_row || ' of this file: one row per customer' "
            f"FROM {s} s JOIN (SELECT external_id, MIN(row_no) AS first_row FROM {s} "
            f"GROUP BY external_id HAVING COUNT(*) > 1) d ON d.external_id = s.external_id "
            f"WHERE s.row_no > d.first_row"
        )
        cursor.execute(
            f"INSERT INTO {e} (row_no, col, value, message) "
            f"SELECT s.row_no, 'signup_date', '', "
            f"'signup_date is required for a new customer (no customer has external id ' "
            f"|| s.external_id || ' yet)' "
            f"FROM {s} s WHERE s.signup_date IS NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {customers} c WHERE c.external_id = s.external_id)"
        )


def apply(staging: Staging, *, rows_ok: int, **_: object) -> Applied:
    """Upsert the staged rows that passed every check; call inside a transaction."""
    if connection.vendor == "postgresql":
        created, updated = _apply_postgres(staging)
    else:
        created, updated = _apply_batched(staging)
    return Applied(created=created, updated=updated, duplicates=rows_ok - created - updated)


def _apply_postgres(staging: Staging) -> tuple[int, int]:
    customers = Customer._meta.db_table
    s, e = staging.table, staging.errors
    new_ids = f"{staging.table}_created"
    good = f"NOT EXISTS (SELECT 1 FROM {e} e WHERE e.row_no = s.row_no)"
    insert_cols = ", ".join(FIELDS)
    insert_values = ", ".join(f"COALESCE(s.{f}, {DEFAULTS[f]})" for f in FIELDS)
    new_values = [f"COALESCE(s.{f}, c.{f})" for f in FIELDS]
    assignments = ", ".join(f"{f} = {v}" for f, v in zip(FIELDS, new_values, strict=True))
    current = ", ".join(f"c.{f}" for f in FIELDS)
    traits = "c.traits || COALESCE(s.traits, '{}'::jsonb)"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {new_ids}")
        cursor.execute(f"CREATE TEMPORARY TABLE {new_ids} (id bigint PRIMARY KEY)")
        # Insert first, then update whatever exists: a customer created concurrently by
        # another path between the two is updated, not lost.
        cursor.execute(
            f"""
            WITH inserted AS (
                INSERT INTO {customers} (external_id, {insert_cols}, is_identified, traits,
                    created_at, updated_at)
                SELECT s.external_id, {insert_values}, true,
                    COALESCE(s.traits, '{{}}'::jsonb), now(), now()
                FROM {s} s
                WHERE {good} AND NOT EXISTS
                    (SELECT 1 FROM {customers} c WHERE c.external_id = s.external_id)
                ORDER BY s.row_no
                ON CONFLICT (external_id) DO NOTHING
                RETURNING id
            )
            INSERT INTO {new_ids} (id) SELECT id FROM inserted
            """
        )
        created = cursor.rowcount
        _engine_rows_for(new_ids)
        cursor.execute(
            f"""
            UPDATE {customers} c SET {assignments}, traits = {traits}, is_identified = true,
                updated_at = now()
            FROM {s} s
            WHERE c.external_id = s.external_id AND {good}
              AND NOT EXISTS (SELECT 1 FROM {new_ids} n WHERE n.id = c.id)
              AND ({current}, c.traits, c.is_identified)
                  IS DISTINCT FROM ({", ".join(new_values)}, {traits}, true)
            """
        )
        updated = cursor.rowcount
        cursor.execute(f"DROP TABLE {new_ids}")
    return created, updated


def _engine_rows_for(new_ids_table: str) -> None:
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {new_ids_table} WHERE id > %s ORDER BY id LIMIT %s",
                [last, ENGINE_BATCH],
            )
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return
        engine_rows_ensure(ids)
        last = ids[-1]


def _apply_batched(staging: Staging) -> tuple[int, int]:
    s, e = staging.table, staging.errors
    columns = ", ".join(f"s.{c}" for c in staging.columns)
    created = updated = 0
    last = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {s} s WHERE s.row_no > %s AND s.row_no NOT IN "
                f"(SELECT row_no FROM {e}) ORDER BY s.row_no LIMIT %s",
                [last, SQLITE_BATCH],
            )
            rows = [dict(zip(staging.columns, r, strict=True)) for r in cursor.fetchall()]
        if not rows:
            return created, updated
        reset_queries()  # DEBUG would keep each batch's SQL
        last = rows[-1]["row_no"]
        existing = Customer.objects.in_bulk(
            [r["external_id"] for r in rows], field_name="external_id"
        )
        new, changed = [], []
        now = timezone.now()
        for row in rows:
            values = _typed(row)
            customer = existing.get(row["external_id"])
            if customer is None:
                new.append(
                    Customer(
                        external_id=row["external_id"],
                        traits=values.pop("traits", None) or {},
                        **values,
                    )
                )
                continue
            before = {f: getattr(customer, f) for f in (*FIELDS, "traits", "is_identified")}
            traits = values.pop("traits", None)
            for field, value in values.items():
                setattr(customer, field, value)
            if traits:
                customer.traits = {**customer.traits, **traits}
            customer.is_identified = True
            if any(getattr(customer, f) != v for f, v in before.items()):
                customer.updated_at = now
                changed.append(customer)
        Customer.objects.bulk_create(new)
        engine_rows_ensure([c.pk for c in new])
        Customer.objects.bulk_update(
            changed, [*FIELDS, "traits", "is_identified", "updated_at"], batch_size=500
        )
        created += len(new)
        updated += len(changed)


def _typed(row: dict) -> dict:
    """Staged text → model values, leaving out empty cells (they keep the current value)."""
    convert = {
        "lifetime_revenue": Decimal,
        "signup_date": date.fromisoformat,
        "renewal_date": date.fromisoformat,
        "owner_id": int,
        "email_opt_out": lambda v: v == "t",
        "traits": json.loads,
    }
    values = {}
    for field in (*FIELDS, "traits"):
        raw = row[field]
        if raw is None or raw == "":
            continue
        values[field] = convert.get(field, str)(raw)
    return values

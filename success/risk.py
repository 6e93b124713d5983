"""Keeping the stored renewal-risk list (``RenewalRisk``) in step with the engine.

``renewal_risk_refresh()`` recomputes the whole list in one transaction, so a reader sees
the old list or the new one, never half of each. On PostgreSQL it writes only what changed
(the candidates into a temporary table, then delete the accounts that left, upsert the
ones whose values differ): a refresh that changes little leaves no dead rows behind.
``renewal_risk_refresh(customer_ids=[…])`` redoes only those accounts. Either way the
per-day totals (``RenewalRiskDay``) are rebuilt from the stored list.

When (``renewal_risk_update``, from the screens' beat task every minute):

- in full when the list was never computed, after a nightly pass, model fit or rescore
  (they write P(still engaged) and scores for everyone), and every ``FULL_MAX_AGE`` (time
  alone lowers scores below the "low score" line);
- otherwise for the accounts whose engine row was rewritten since the last pass
  (``ScoreState.computed_at``: new touchpoints, stage moves).

A change to a customer's revenue, renewal date or owner outside the engine (API, CSV
import, admin) shows at the next full pass, or at once if the writer calls
``renewal_risk_refresh(customer_ids=[…])``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from customers.models import JobRun, ScoreState
from success.models import RenewalRisk, RenewalRiskDay, RenewalRiskRefresh
from success.selectors import MAX_DAYS, renewal_risk_candidates

FULL_MAX_AGE = timedelta(minutes=30)
# The engine's pass time can trail the wall clock by a job's duration: look back this much.
CHANGED_OVERLAP = timedelta(minutes=10)
# More changed accounts than this: a full pass is cheaper than a long id list.
INCREMENTAL_LIMIT = 20_000
FULL_PASS_KINDS = (JobRun.Kind.NIGHTLY, JobRun.Kind.FIT, JobRun.Kind.RESCORE)
COLUMNS = ("customer_id", "renewal_date", "owner_id", "risk", "revenue_at_risk", "computed_at")
TABLE = RenewalRisk._meta.db_table


def _candidates_sql(now: datetime, customer_ids: list[int] | None) -> tuple[str, list]:
    candidates = renewal_risk_candidates(days=MAX_DAYS, now=now)
    if customer_ids is not None:
        candidates = candidates.filter(pk__in=customer_ids)
    sql, params = (
        candidates.order_by()
        .values_list("pk", "renewal_date", "owner_id", "risk", "revenue_at_risk")
        .query.sql_with_params()
    )
    return sql, list(params)


def _write_postgresql(sql: str, params: list, now: datetime, ids: list[int] | None) -> int:
    scope = "" if ids is None else " AND r.customer_id = ANY(%s)"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        cursor.execute("DROP TABLE IF EXISTS risk_new")  # a savepoint leaves it until commit
        cursor.execute(f"CREATE TEMP TABLE risk_new ON COMMIT DROP AS {sql}", params)
        accounts = cursor.rowcount
        cursor.execute(
            f"DELETE FROM {TABLE} r WHERE NOT EXISTS "
            f"(SELECT 1 FROM risk_new n WHERE n.pk = r.customer_id){scope}",
            [] if ids is None else [ids],
        )
        cursor.execute(
            f"INSERT INTO {TABLE} AS r ({', '.join(COLUMNS)}) "
            "SELECT n.pk, n.renewal_date, n.owner_id, n.risk, n.revenue_at_risk, %s "
            "FROM risk_new n ON CONFLICT (customer_id) DO UPDATE SET "
            "renewal_date = EXCLUDED.renewal_date, owner_id = EXCLUDED.owner_id, "
            "risk = EXCLUDED.risk, revenue_at_risk = EXCLUDED.revenue_at_risk, "
            "computed_at = EXCLUDED.computed_at "
            "WHERE (r.renewal_date, r.owner_id, r.risk, r.revenue_at_risk) IS DISTINCT FROM "
            "(EXCLUDED.renewal_date, EXCLUDED.owner_id, EXCLUDED.risk, EXCLUDED.revenue_at_risk)",
            [now],
        )
    return accounts


def _write_simple(sql: str, params: list, now: datetime, ids: list[int] | None) -> int:
    stored = (
        RenewalRisk.objects.all()
        if ids is None
        else RenewalRisk.objects.filter(customer_id__in=ids)
    )
    stored.delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) SELECT c.*, %s FROM ({sql}) AS c",
            [now, *params],
        )
        return cursor.rowcount


def _days_rebuild() -> None:
    """Per-day, per-owner totals of the stored list (one GROUP BY over it, a few hundred
    rows written): what the screen's totals read."""
    RenewalRiskDay.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RenewalRiskDay._meta.db_table} "
            "(renewal_date, owner_id, accounts, revenue_at_risk) "
            f"SELECT renewal_date, owner_id, COUNT(*), SUM(revenue_at_risk) FROM {TABLE} "
            "GROUP BY renewal_date, owner_id"
        )


def renewal_risk_refresh(
    *, customer_ids: Iterable[int] | None = None, now: datetime | None = None
) -> int:
    """Recompute the stored list (all accounts, or only ``customer_ids``); returns how many
    of the recomputed accounts are on it."""
    now = now or timezone.now()
    started = time.perf_counter()
    ids = None if customer_ids is None else list(customer_ids)
    if ids is not None and not ids:
        return 0
    sql, params = _candidates_sql(now, ids)
    write = _write_postgresql if connection.vendor == "postgresql" else _write_simple
    with transaction.atomic():
        accounts = write(sql, params, now, ids)
        _days_rebuild()
        seconds = round(time.perf_counter() - started, 3)
        if ids is None:
            RenewalRiskRefresh.objects.update_or_create(
                pk=1,
                defaults={
                    "computed_at": now,
                    "checked_at": now,
                    "accounts": accounts,
                    "seconds": seconds,
                },
            )
    return accounts


def renewal_risk_update(*, now: datetime | None = None) -> dict:
    """What the beat task does each minute: a full pass when due, else the accounts whose
    engine row changed since the last pass. Returns what it did."""
    now = now or timezone.now()
    state = RenewalRiskRefresh.objects.filter(pk=1).first()
    full = (
        state is None
        or now - state.computed_at >= FULL_MAX_AGE
        or JobRun.objects.filter(
            kind__in=FULL_PASS_KINDS, finished_at__gt=state.computed_at
        ).exists()
    )
    if not full:
        changed = list(
            ScoreState.objects.filter(computed_at__gte=state.checked_at - CHANGED_OVERLAP)
            .order_by()
            .values_list("customer_id", flat=True)[: INCREMENTAL_LIMIT + 1]
        )
        full = len(changed) > INCREMENTAL_LIMIT
    if full:
        return {"renewal_risk": "full", "accounts": renewal_risk_refresh(now=now)}
    renewal_risk_refresh(customer_ids=changed, now=now)
    RenewalRiskRefresh.objects.filter(pk=1).update(checked_at=now)
    return {"renewal_risk": "changed", "accounts": len(changed)}


def renewal_risk_ensure() -> None:
    """Compute the list once if it never was (a fresh install before beat's first run)."""
    if not RenewalRiskRefresh.objects.filter(pk=1).exists():
        renewal_risk_refresh()

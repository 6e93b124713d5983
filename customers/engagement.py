"""Keeping every customer's engagement state current: the layer between engine and database.

The pure engine (``customers/engine/``) does the math on arrays; this module loads the inputs
in bulk, calls it, and writes back with set-based statements. Entry points:

- ``touchpoint_add``: record one touchpoint (and its pending contribution) atomically.
- ``engagement_refresh``: the incremental refresh — applies pending touchpoints (O(1) each by
  forward decay) and re-stages customers whose stage is due to change with time.
- ``engagement_rescore_range``: recompute decay sums (and, in ``full`` mode, activity and
  stages) of an id range from history; one SQL statement on PostgreSQL.
- ``engagement_daily_range``: the nightly pass over an id range: P(still engaged), stage,
  30-day trend, and the day's compact snapshot.
- ``engagement_fit``: fit the MBG/NBD model on everyone's activity as of a date.
- ``engagement_explain``: why one customer's score and stage are what they are.

All times inside are float seconds since the Unix epoch (stage rules take days).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db import connection, transaction
from django.db.models import ExpressionWrapper, F, FloatField, Value
from django.db.models.functions import Exp, Greatest
from django.utils import timezone

from customers.engine import bgnbd, decay, snapshots, stages
from customers.locks import engine_write_lock, range_lock
from customers.models import (
    Customer,
    Engagement,
    EngagementSettings,
    ModelFit,
    PendingTouchpoint,
    ScoreSnapshot,
    StageChange,
    StageDaily,
    Touchpoint,
    TouchpointType,
)

DAY = decay.SECONDS_PER_DAY
TREND_DAYS = 30
# Queue rows per refresh batch: SQLite caps a statement at 32,766 variables.
REFRESH_BATCH_POSTGRES = 20_000
REFRESH_BATCH_SQLITE = 5_000


# --- configuration -----------------------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    """The engine settings as plain values, read once per job or request."""

    half_life_days: float
    half_point: float
    epoch: float
    thresholds: stages.StageThresholds

    @classmethod
    def from_settings(cls, settings: EngagementSettings) -> EngineConfig:
        names = [f.name for f in stages.StageThresholds.__dataclass_fields__.values()]
        return cls(
            half_life_days=settings.half_life_days,
            half_point=settings.score_half_point,
            epoch=settings.decay_epoch.timestamp(),
            thresholds=stages.StageThresholds(**{n: getattr(settings, n) for n in names}),
        )

    def score(self, decay_sum: np.ndarray | float, now: float) -> np.ndarray:
        return decay.score(
            decay_sum,
            now,
            epoch=self.epoch,
            half_life_days=self.half_life_days,
            half_point=self.half_point,
        )


def engine_config() -> EngineConfig:
    return EngineConfig.from_settings(EngagementSettings.load())


def score_expression(now: datetime, config: EngineConfig) -> ExpressionWrapper:
    """SQL for the live 0–100 score: ``100·(1 − e^(−max(decay_sum, 0)·c))`` (decay.py steps
    3 and 5 with every per-query constant folded into ``c``)."""
    growth_inverse = math.exp(
        -(now.timestamp() - config.epoch) * decay.decay_exponent_scale(config.half_life_days)
    )
    c = growth_inverse * decay.LN2 / config.half_point
    return ExpressionWrapper(
        Value(100.0) * (Value(1.0) - Exp(Greatest(F("decay_sum"), Value(0.0)) * Value(-c))),
        output_field=FloatField(),
    )


# --- ingest ------------------------------------------------------------------------------


def touchpoint_add(
    *,
    customer: Customer,
    type: TouchpointType,
    occurred_at: datetime,
    value: Decimal | None = None,
    source: str = "app",
    idempotency_key: str | None = None,
    properties: dict | None = None,
) -> Touchpoint:
    """Record one touchpoint and queue its score contribution, in one transaction.

    The queue row is what makes the engine's update O(1) and exactly-once: the incremental
    refresh applies and deletes it in a single transaction.
    """
    with transaction.atomic():
        touchpoint = Touchpoint.objects.create(
            customer=customer,
            type=type,
            occurred_at=occurred_at,
            value=value,
            source=source,
            idempotency_key=idempotency_key,
            properties=properties or {},
        )
        pending_record([touchpoint.pk], [customer.pk])
    return touchpoint


def pending_record(touchpoint_ids: Sequence[int], customer_ids: Sequence[int]) -> None:
    """Queue already-inserted touchpoints for the engine (call inside their transaction)."""
    PendingTouchpoint.objects.bulk_create(
        [
            PendingTouchpoint(touchpoint_id=t, customer_id=c)
            for t, c in zip(touchpoint_ids, customer_ids, strict=True)
        ]
    )


def engine_rows_ensure(customer_ids: Sequence[int]) -> None:
    """Create the engine's rows for new customers (idempotent; call in their transaction).

    Every customer has engagement state from creation on (stage *new*, score 0), so lists,
    filters and the refresh never meet a customer the engine does not know.
    """
    if not customer_ids:
        return
    Engagement.objects.bulk_create(
        [Engagement(customer_id=cid) for cid in customer_ids],
        ignore_conflicts=True,
        batch_size=5_000,
    )


# --- SQL helpers -------------------------------------------------------------------------


def _epoch_sql(column: str) -> str:
    """Seconds since 1970 as float8. ``date_part`` (not ``EXTRACT``, which returns numeric on
    PostgreSQL ≥ 14 and makes decay math several times slower)."""
    if connection.vendor == "postgresql":
        return f"date_part('epoch', {column})"
    return f"((julianday({column}) - 2440587.5) * 86400.0)"


def _to_datetime(seconds: float) -> datetime | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


_COLUMN_TYPES: dict[tuple[str, str], dict[str, str]] = {}


def _column_types(table: str) -> dict[str, str]:
    """PostgreSQL column types of ``table``, read once per database and process."""
    key = (connection.settings_dict["NAME"], table)
    if key not in _COLUMN_TYPES:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = %s",
                [table],
            )
            _COLUMN_TYPES[key] = dict(cursor.fetchall())
    return _COLUMN_TYPES[key]


def _bulk_update(table: str, key: str, columns: Sequence[str], rows: list[tuple]) -> None:
    """UPDATE ``table`` SET columns FROM rows (key first): one statement on PostgreSQL."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        # Row values as one VALUES list, typed by a first row of casts taken from the table.
        with connection.cursor() as cursor:
            types = _column_types(table)
            all_cols = [key, *columns]
            placeholders = "(" + ", ".join(["%s"] * len(all_cols)) + ")"
            typed_first = "(" + ", ".join(f"%s::{types[c]}" for c in all_cols) + ")"
            per_statement = max(1, 60_000 // len(all_cols))  # < 65,535 parameters
            for start in range(0, len(rows), per_statement):
                part = rows[start : start + per_statement]
                values_sql = ", ".join([typed_first] + [placeholders] * (len(part) - 1))
                assignments = ", ".join(f"{c} = v.{c}" for c in columns)
                cursor.execute(
                    f"UPDATE {table} AS t SET {assignments} FROM (VALUES {values_sql}) "
                    f"AS v({', '.join(all_cols)}) WHERE t.{key} = v.{key}",
                    [value for row in part for value in row],
                )
        return
    assignments = ", ".join(f"{c} = %s" for c in columns)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {assignments} WHERE {key} = %s",
            [(*row[1:], row[0]) for row in rows],
        )


# --- state loading and stage evaluation --------------------------------------------------


@dataclass
class _State:
    ids: np.ndarray
    signup: np.ndarray
    first: np.ndarray
    last: np.ndarray
    frequency: np.ndarray
    decay_sum: np.ndarray
    stage: np.ndarray  # codes; -1 = never evaluated
    stage_since: np.ndarray


def _load_state(where_sql: str, params: Sequence) -> _State:
    e = Engagement._meta.db_table
    c = Customer._meta.db_table
    sql = (
        f"SELECT e.customer_id, {_epoch_sql('c.signup_date')}, "
        f"{_epoch_sql('e.first_engagement_at')}, {_epoch_sql('e.last_engagement_at')}, "
        f"e.frequency, e.decay_sum, e.stage, {_epoch_sql('e.stage_since')} "
        f"FROM {e} e JOIN {c} c ON c.id = e.customer_id WHERE {where_sql} "
        f"ORDER BY e.customer_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        empty = np.zeros(0)
        return _State(
            empty.astype(np.int64),
            empty,
            empty,
            empty,
            empty,
            empty,
            empty.astype(np.int64),
            empty,
        )
    ids, signup, first, last, freq, dsum, stage_names, since = zip(*rows, strict=True)
    since_arr = np.array(since, dtype=float)
    codes = np.array([stages.STAGE_CODE.get(s, -1) for s in stage_names], dtype=np.int64)
    codes[np.isnan(since_arr)] = stages.NO_STAGE  # default "new" row never evaluated yet
    return _State(
        ids=np.array(ids, dtype=np.int64),
        signup=np.array(signup, dtype=float),
        first=np.array(first, dtype=float),
        last=np.array(last, dtype=float),
        frequency=np.array(freq, dtype=float),
        decay_sum=np.array(dsum, dtype=float),
        stage=codes,
        stage_since=since_arr,
    )


def _load_state_ids(ids: Sequence[int]) -> _State:
    if connection.vendor == "postgresql":
        return _load_state("e.customer_id = ANY(%s)", [list(ids)])
    return _load_state(f"e.customer_id IN ({', '.join(['%s'] * len(ids))})", list(ids))


def _latest_fit() -> bgnbd.MBGParams | None:
    fit = ModelFit.objects.order_by("-created_at").first()
    if fit is None:
        return None
    return bgnbd.MBGParams(r=fit.r, alpha=fit.alpha, a=fit.a, b=fit.b)


def _p_alive(state: _State, now: float, params: bgnbd.MBGParams | None) -> np.ndarray:
    result = np.full(len(state.ids), np.nan)
    acted = state.frequency >= 1
    if params is None or not acted.any():
        return result
    x = state.frequency[acted] - 1
    # One action means no repeat: t_x is 0 by definition (first and last are the same act).
    t_x = np.where(x > 0, np.maximum((state.last[acted] - state.first[acted]) / DAY, 0.0), 0.0)
    age = np.maximum((now - state.first[acted]) / DAY, t_x)
    result[acted] = bgnbd.p_alive(params, x, t_x, age)
    return result


def _expected_gap_days(state: _State) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = (state.last - state.first) / DAY / (state.frequency - 1)
    return np.where(state.frequency >= 2, gap, np.nan)


@dataclass(frozen=True)
class StagePassResult:
    customers: int
    changes: int


def _stage_and_write(
    state: _State,
    now: float,
    config: EngineConfig,
    params: bgnbd.MBGParams | None,
    *,
    trend: np.ndarray | None = None,
    write_activity: bool = False,
) -> tuple[StagePassResult, np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate stages for loaded customers, write state and stage-change rows.

    With ``write_activity`` the decay sum and activity in ``state`` are written in the same
    statement (the refresh updates them in memory first: one row version per customer).
    Returns the pass counts plus (scores, stage codes, P(alive)) for snapshots.
    """
    n = len(state.ids)
    if n == 0:
        empty = np.zeros(0)
        return StagePassResult(0, 0), empty, empty.astype(np.int64), empty
    gap = _expected_gap_days(state)
    p_alive = _p_alive(state, now, params)
    inputs = stages.StageInputs(
        now=now / DAY,
        signup=state.signup / DAY,
        first_action=state.first / DAY,
        last_action=state.last / DAY,
        n_actions=state.frequency,
        expected_gap=gap,
        p_alive=p_alive,
        prev_stage=state.stage,
        stage_since=state.stage_since / DAY,
    )
    result = stages.evaluate(inputs, config.thresholds)
    scores = config.score(state.decay_sum, now)
    changed = result.stage != state.stage
    now_dt = _to_datetime(now)
    stage_since = np.where(changed, now, state.stage_since)
    rows = []
    for i in range(n):
        rows.append(
            (
                int(state.ids[i]),
                stages.STAGES[result.stage[i]],
                stages.RULE_IDS[result.rule[i]],
                _to_datetime(stage_since[i]),
                _to_datetime(result.due_at[i] * DAY),
                None if math.isnan(p_alive[i]) else float(p_alive[i]),
                None if math.isnan(gap[i]) else float(gap[i]),
                now_dt,
                *(() if trend is None else (None if math.isnan(trend[i]) else float(trend[i]),)),
                *(
                    ()
                    if not write_activity
                    else (
                        float(state.decay_sum[i]),
                        _to_datetime(state.first[i]),
                        _to_datetime(state.last[i]),
                        int(state.frequency[i]),
                    )
                ),
            )
        )
    columns = [
        "stage",
        "stage_rule",
        "stage_since",
        "stage_due_at",
        "p_alive",
        "expected_gap_days",
        "computed_at",
    ]
    if trend is not None:
        columns.append("trend_30d")
    if write_activity:
        columns += ["decay_sum", "first_engagement_at", "last_engagement_at", "frequency"]
    _bulk_update(Engagement._meta.db_table, "customer_id", columns, rows)
    changes = [
        StageChange(
            customer_id=int(state.ids[i]),
            from_stage="" if state.stage[i] < 0 else stages.STAGES[state.stage[i]],
            to_stage=stages.STAGES[result.stage[i]],
            changed_at=now_dt,
            score=float(scores[i]),
            p_alive=None if math.isnan(p_alive[i]) else float(p_alive[i]),
            rule=stages.RULE_IDS[result.rule[i]],
        )
        for i in np.flatnonzero(changed)
    ]
    StageChange.objects.bulk_create(changes, batch_size=5_000)
    return StagePassResult(n, len(changes)), scores, result.stage, p_alive


# --- incremental refresh -----------------------------------------------------------------


@dataclass(frozen=True)
class RefreshResult:
    touchpoints_applied: int
    customers: int
    stage_changes: int
    seconds: float


def _drain_pending(limit: int) -> list[tuple[int, int]]:
    """Claim and delete up to ``limit`` queued touchpoints: (touchpoint id, customer id)."""
    table = PendingTouchpoint._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY id "
                f"LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING touchpoint_id, customer_id",
                [limit],
            )
            return cursor.fetchall()
        cursor.execute(
            f"SELECT id, touchpoint_id, customer_id FROM {table} ORDER BY id LIMIT %s", [limit]
        )
        rows = cursor.fetchall()
        if rows:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(rows))})",
                [r[0] for r in rows],
            )
        return [(r[1], r[2]) for r in rows]


@dataclass(frozen=True)
class _Deltas:
    """Per customer: the decay terms, first/last engagement action and count to add."""

    ids: np.ndarray
    decay: np.ndarray
    first: np.ndarray  # NaN where none of the touchpoints is an engagement action
    last: np.ndarray
    count: np.ndarray


def _pending_deltas(touchpoint_ids: list[int], config: EngineConfig) -> _Deltas:
    """Aggregate queued touchpoints per customer (read only; applied with the stage write)."""
    t = Touchpoint._meta.db_table
    tt = TouchpointType._meta.db_table
    scale = decay.decay_exponent_scale(config.half_life_days)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"""
                SELECT tp.customer_id,
                       COALESCE(SUM(ty.weight::float8
                           * exp((date_part('epoch', tp.occurred_at) - %(epoch)s) * %(scale)s))
                           FILTER (WHERE ty.is_active), 0),
                       MIN(date_part('epoch', tp.occurred_at))
                           FILTER (WHERE ty.counts_as_engagement AND ty.is_active),
                       MAX(date_part('epoch', tp.occurred_at))
                           FILTER (WHERE ty.counts_as_engagement AND ty.is_active),
                       COUNT(*) FILTER (WHERE ty.counts_as_engagement AND ty.is_active)
                FROM {t} tp JOIN {tt} ty ON ty.id = tp.type_id
                WHERE tp.id = ANY(%(ids)s)
                GROUP BY tp.customer_id ORDER BY tp.customer_id
                """,
                {"ids": list(touchpoint_ids), "epoch": config.epoch, "scale": scale},
            )
            rows = cursor.fetchall()
            data = np.array(rows, dtype=float).reshape(-1, 5)
            return _Deltas(
                data[:, 0].astype(np.int64), data[:, 1], data[:, 2], data[:, 3], data[:, 4]
            )
        cursor.execute(
            f"SELECT tp.customer_id, CAST(ty.weight AS DOUBLE PRECISION), "
            f"ty.counts_as_engagement, ty.is_active, {_epoch_sql('tp.occurred_at')} "
            f"FROM {t} tp JOIN {tt} ty ON ty.id = tp.type_id "
            f"WHERE tp.id IN ({', '.join(['%s'] * len(touchpoint_ids))})",
            list(touchpoint_ids),
        )
        rows = cursor.fetchall()
    empty = np.zeros(0)
    if not rows:
        return _Deltas(empty.astype(np.int64), empty, empty, empty, empty)
    cust = np.array([r[0] for r in rows], dtype=np.int64)
    weight = np.array([float(r[1]) for r in rows])
    active = np.array([bool(r[3]) for r in rows])
    engaging = np.array([bool(r[2]) for r in rows]) & active
    when = np.array([r[4] for r in rows], dtype=float)
    terms = np.where(
        active,
        decay.decay_terms(weight, when, epoch=config.epoch, half_life_days=config.half_life_days),
        0.0,
    )
    ids, inverse = np.unique(cust, return_inverse=True)
    first = np.full(len(ids), np.inf)
    last = np.full(len(ids), -np.inf)
    np.minimum.at(first, inverse[engaging], when[engaging])
    np.maximum.at(last, inverse[engaging], when[engaging])
    return _Deltas(
        ids,
        np.bincount(inverse, weights=terms, minlength=len(ids)),
        np.where(np.isfinite(first), first, np.nan),
        np.where(np.isfinite(last), last, np.nan),
        np.bincount(inverse, weights=engaging.astype(float), minlength=len(ids)),
    )


def _apply_deltas(state: _State, deltas: _Deltas) -> _State:
    """Add deltas to loaded state in memory (customers without an engagement row skipped)."""
    position = np.searchsorted(state.ids, deltas.ids)
    known = (position < len(state.ids)) & (
        state.ids[np.minimum(position, len(state.ids) - 1)] == deltas.ids
    )
    at = position[known]
    state.decay_sum[at] += deltas.decay[known]
    state.first[at] = np.fmin(state.first[at], deltas.first[known])
    state.last[at] = np.fmax(state.last[at], deltas.last[known])
    state.frequency[at] += deltas.count[known]
    return state


def engagement_refresh(
    *, now: datetime | None = None, batch_size: int | None = None
) -> RefreshResult:
    """The incremental refresh: cost proportional to the customers that changed.

    1. Drain queued touchpoints in batches (``SKIP LOCKED``); per batch, in one transaction:
       sum their forward-decay terms and activity per customer, add them to the loaded state
       in memory, re-stage, and write each customer once (one row version, not two), deleting
       the queue rows. This read-modify-write is safe because every other writer of decay
       sums and activity (refresh, rescore, rebase) is excluded by the engine write lock held
       here. A late-committing touchpoint is drained by a later batch or run; a crash rolls
       the batch back and the queue rows come back.
    2. Re-stage customers whose ``stage_due_at`` has passed: time alone moved them.
    """
    started = time.perf_counter()
    now_dt = now or timezone.now()
    now_s = now_dt.timestamp()
    config = engine_config()
    params = _latest_fit()
    if batch_size is None:
        postgres = connection.vendor == "postgresql"
        batch_size = REFRESH_BATCH_POSTGRES if postgres else REFRESH_BATCH_SQLITE
    applied = customers = changes = 0
    while True:
        with transaction.atomic():
            engine_write_lock(shared=False)
            if _rescore_in_progress():
                break  # its chunks will overwrite these customers; the queue waits for it
            drained = _drain_pending(batch_size)
            if not drained:
                break
            deltas = _pending_deltas([t for t, _ in drained], config)
            state = _apply_deltas(_load_state_ids(deltas.ids.tolist()), deltas)
            result, *_ = _stage_and_write(state, now_s, config, params, write_activity=True)
            applied += len(drained)
            customers += result.customers
            changes += result.changes
    while True:
        with transaction.atomic():
            engine_write_lock(shared=False)
            if _rescore_in_progress():
                break
            due_ids = list(
                Engagement.objects.filter(stage_due_at__lte=now_dt)
                .order_by("stage_due_at")
                .values_list("customer_id", flat=True)[:batch_size]
            )
            if not due_ids:
                break
            state = _load_state(f"e.customer_id IN ({', '.join(['%s'] * len(due_ids))})", due_ids)
            result, *_ = _stage_and_write(state, now_s, config, params)
            customers += result.customers
            changes += result.changes
    return RefreshResult(applied, customers, changes, time.perf_counter() - started)


def _rescore_in_progress() -> bool:
    from customers.models import JobRun

    return JobRun.objects.filter(kind=JobRun.Kind.RESCORE, status=JobRun.Status.RUNNING).exists()


# --- full rescore of a range -------------------------------------------------------------


@dataclass(frozen=True)
class RangeResult:
    customers: int
    changes: int


def engagement_rescore_range(
    first_id: int,
    last_id: int,
    *,
    full: bool,
    run_id: int | None = None,
    now: datetime | None = None,
    history_until: datetime | None = None,
) -> RangeResult:
    """Recompute decay sums of customers ``first_id..last_id`` from their whole history.

    With ``full``, also recompute activity (first/last engagement action, frequency) and
    re-stage the range — needed when a type's engagement flag or active flag changed; a
    weight or half-life change only moves decay sums. Sets absolute values, so running a
    range twice changes nothing the second time. ``history_until`` counts only touchpoints
    up to that instant (replaying the past, e.g. for demo history).

    PostgreSQL: writes back what ``engagement_rescore_prepare`` staged for ``run_id`` in one
    parallel pass. SQLite: aggregates the range here with numpy. Call inside a transaction.
    """
    config = engine_config()
    engine_write_lock(shared=True)
    range_lock(first_id)
    until = history_until or datetime.max.replace(tzinfo=UTC)
    if connection.vendor == "postgresql":
        if run_id is None:
            raise ValueError("On PostgreSQL a rescore range needs the run whose data was staged.")
        customers = _rescore_range_from_staged(first_id, last_id, run_id)
    else:
        customers = _rescore_range_numpy(first_id, last_id, config, until)
    changes = 0
    if full:
        now_s = (now or timezone.now()).timestamp()
        state = _load_state("e.customer_id BETWEEN %s AND %s", [first_id, last_id])
        result, *_ = _stage_and_write(state, now_s, config, _latest_fit())
        changes = result.changes
    return RangeResult(customers, changes)


def staging_tables(run_id: int) -> tuple[str, str]:
    return f"engine_rescore_{int(run_id)}", f"engine_rescore_pending_{int(run_id)}"


def engagement_rescore_prepare(run_id: int, *, history_until: datetime | None = None) -> int:
    """PostgreSQL phase A of a rescore: every customer's aggregates in one parallel pass.

    1. Take the engine write lock exclusively at session level *before* the snapshot
       exists, so no refresh batch is half-way (refresh batches then see the running
       rescore and leave the queue alone until it ends).
    2. In one REPEATABLE READ snapshot: ``CREATE UNLOGGED TABLE … AS`` the per-customer
       decay sum and activity over all touchpoints (a statement PostgreSQL runs with
       parallel workers, which an ``UPDATE`` cannot use), and the queued touchpoints
       visible in that same snapshot — exactly those the staged sums already include.
    3. The chunks (phase B) write staged values back and delete those queue rows.

    Returns the number of customers with touchpoints.
    """
    from customers.locks import ENGINE_WRITE_KEY, LOCK_NAMESPACE

    config = engine_config()
    staged, pending = staging_tables(run_id)
    t = Touchpoint._meta.db_table
    p = PendingTouchpoint._meta.db_table
    until = history_until or datetime.max.replace(tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, ENGINE_WRITE_KEY])
        try:
            owns_transaction = not connection.in_atomic_block
            with transaction.atomic():
                if owns_transaction:  # inside a caller's transaction the level is theirs
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute(f"DROP TABLE IF EXISTS {staged}, {pending}")
                # Weights and flags as arrays indexed by type id: no join, so the planner
                # can stream the covering index in customer order (a join breaks the order
                # and makes it hash 20M rows into 1M groups, spilling at default work_mem).
                # Both off: with sorting allowed the planner may sort 20M rows externally.
                cursor.execute("SET LOCAL enable_hashagg = off")
                cursor.execute("SET LOCAL enable_sort = off")
                weights, engaging = _type_arrays()
                cursor.execute(
                    f"""
                    CREATE UNLOGGED TABLE {staged} AS
                    SELECT tp.customer_id,
                           SUM((%(w)s::float8[])[tp.type_id + 1]
                               * exp((date_part('epoch', tp.occurred_at) - %(epoch)s)
                                     * %(scale)s)) AS decay_sum,
                           MIN(tp.occurred_at) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1])
                               AS first_at,
                           MAX(tp.occurred_at) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1])
                               AS last_at,
                           COUNT(*) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS n
                    FROM {t} tp
                    WHERE tp.occurred_at <= %(until)s
                    GROUP BY tp.customer_id
                    """,
                    {
                        "w": weights,
                        "e": engaging,
                        "epoch": config.epoch,
                        "scale": decay.decay_exponent_scale(config.half_life_days),
                        "until": until,
                    },
                )
                customers = cursor.rowcount
                cursor.execute(
                    f"CREATE UNLOGGED TABLE {pending} AS SELECT id, customer_id FROM {p}"
                )
                cursor.execute(f"CREATE INDEX ON {staged} (customer_id)")
                cursor.execute(f"CREATE INDEX ON {pending} (customer_id)")
                cursor.execute(f"ANALYZE {staged}")
        finally:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, ENGINE_WRITE_KEY])
    return customers


def _type_arrays() -> tuple[list[float], list[bool]]:
    """Weight and engagement flag of every type, indexed by type id (inactive types count 0)."""
    types = list(
        TouchpointType.objects.values_list("id", "weight", "counts_as_engagement", "is_active")
    )
    size = max((row[0] for row in types), default=0) + 1
    weights, engaging = [0.0] * size, [False] * size
    for type_id, weight, counts, active in types:
        if active:
            weights[type_id] = float(weight)
            engaging[type_id] = bool(counts)
    return weights, engaging


def engagement_rescore_cleanup(run_id: int) -> None:
    """Drop a finished or superseded run's staging tables."""
    if connection.vendor != "postgresql":
        return
    staged, pending = staging_tables(run_id)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {staged}, {pending}")


def _rescore_range_from_staged(first_id: int, last_id: int, run_id: int) -> int:
    staged, pending = staging_tables(run_id)
    e = Engagement._meta.db_table
    p = PendingTouchpoint._meta.db_table
    sql = f"""
        WITH consumed AS (
            DELETE FROM {p} WHERE id IN (
                SELECT id FROM {pending} WHERE customer_id BETWEEN %(lo)s AND %(hi)s)
        ),
        target AS (
            SELECT e2.customer_id, COALESCE(s.decay_sum, 0) AS decay_sum, s.first_at,
                   s.last_at, COALESCE(s.n, 0) AS n
            FROM {e} e2 LEFT JOIN {staged} s
                ON s.customer_id = e2.customer_id AND s.customer_id BETWEEN %(lo)s AND %(hi)s
            WHERE e2.customer_id BETWEEN %(lo)s AND %(hi)s
        )
        UPDATE {e} AS e SET decay_sum = target.decay_sum,
            first_engagement_at = target.first_at, last_engagement_at = target.last_at,
            frequency = target.n
        FROM target
        WHERE e.customer_id = target.customer_id
          AND (abs(e.decay_sum - target.decay_sum)
                   > 1e-12 * greatest(abs(target.decay_sum), 1e-300)
               OR e.frequency <> target.n
               OR e.first_engagement_at IS DISTINCT FROM target.first_at
               OR e.last_engagement_at IS DISTINCT FROM target.last_at)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"lo": first_id, "hi": last_id})
        return cursor.rowcount


def _rescore_range_numpy(first_id: int, last_id: int, config: EngineConfig, until: datetime) -> int:
    t = Touchpoint._meta.db_table
    tt = TouchpointType._meta.db_table
    e = Engagement._meta.db_table
    PendingTouchpoint.objects.filter(customer_id__range=(first_id, last_id)).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tp.customer_id, CAST(ty.weight AS DOUBLE PRECISION), ty.counts_as_engagement, "
            f"{_epoch_sql('tp.occurred_at')} FROM {t} tp JOIN {tt} ty ON ty.id = tp.type_id "
            f"WHERE ty.is_active AND tp.customer_id BETWEEN %s AND %s AND tp.occurred_at <= %s",
            [first_id, last_id, until],
        )
        rows = cursor.fetchall()
        cursor.execute(
            f"SELECT customer_id, decay_sum, frequency, {_epoch_sql('first_engagement_at')}, "
            f"{_epoch_sql('last_engagement_at')} FROM {e} "
            f"WHERE customer_id BETWEEN %s AND %s ORDER BY customer_id",
            [first_id, last_id],
        )
        current = cursor.fetchall()
    if not current:
        return 0
    ids = np.array([r[0] for r in current], dtype=np.int64)
    slot = {int(cid): i for i, cid in enumerate(ids)}
    decay_sum = np.zeros(len(ids))
    freq = np.zeros(len(ids))
    first = np.full(len(ids), np.inf)
    last = np.full(len(ids), -np.inf)
    if rows:
        idx = np.array([slot[r[0]] for r in rows])
        weight = np.array([float(r[1]) for r in rows])
        engaging = np.array([bool(r[2]) for r in rows])
        when = np.array([r[3] for r in rows], dtype=float)
        terms = decay.decay_terms(
            weight, when, epoch=config.epoch, half_life_days=config.half_life_days
        )
        decay_sum = np.bincount(idx, weights=terms, minlength=len(ids))
        freq = np.bincount(idx, weights=engaging.astype(float), minlength=len(ids))
        np.minimum.at(first, idx[engaging], when[engaging])
        np.maximum.at(last, idx[engaging], when[engaging])
    updates = []
    for i, row in enumerate(current):
        new = (float(decay_sum[i]), int(freq[i]), _to_datetime(first[i]), _to_datetime(last[i]))
        old_first = None if row[3] is None else round(row[3], 3)
        old_last = None if row[4] is None else round(row[4], 3)
        new_first = None if new[2] is None else round(first[i], 3)
        new_last = None if new[3] is None else round(last[i], 3)
        same_sum = abs(row[1] - new[0]) <= 1e-12 * max(abs(new[0]), 1e-300)
        if same_sum and row[2] == new[1] and old_first == new_first and old_last == new_last:
            continue
        updates.append((int(ids[i]), *new))
    _bulk_update(
        e,
        "customer_id",
        ["decay_sum", "frequency", "first_engagement_at", "last_engagement_at"],
        updates,
    )
    return len(updates)


# --- epoch rebase ------------------------------------------------------------------------


def engagement_rebase(*, new_epoch: datetime) -> int:
    """Move the forward-decay epoch to ``new_epoch`` (decay.py step 4): every stored sum is
    multiplied by ``2^(−(new − old)/h)`` and the epoch moves in the same transaction, so every
    score is unchanged. Returns the number of customers rescaled."""
    with transaction.atomic():
        engine_write_lock(shared=False)
        settings = EngagementSettings.objects.select_for_update().get(pk=1)
        factor = decay.rebase_factor(
            settings.decay_epoch.timestamp(),
            new_epoch.timestamp(),
            half_life_days=settings.half_life_days,
        )
        rescaled = Engagement.objects.update(decay_sum=F("decay_sum") * factor)
        EngagementSettings.objects.filter(pk=1).update(decay_epoch=new_epoch)
    return rescaled


def engagement_rebase_if_needed(*, now: datetime) -> bool:
    settings = EngagementSettings.load()
    if not decay.needs_rebase(
        now.timestamp(),
        epoch=settings.decay_epoch.timestamp(),
        half_life_days=settings.half_life_days,
    ):
        return False
    engagement_rebase(new_epoch=now)
    return True


# --- nightly pass ------------------------------------------------------------------------


def engagement_daily_range(
    first_id: int, last_id: int, *, day: date, now: datetime | None = None
) -> RangeResult:
    """Nightly work for customers ``first_id..last_id``: P(still engaged) with the latest
    fit, stage, 30-day trend from the snapshot of ``day − 30``, and ``day``'s snapshot
    blocks (upserted, so a redelivered range rewrites identical bytes). Call inside a
    transaction; ranges should align to ``snapshots.BLOCK_SIZE``."""
    config = engine_config()
    engine_write_lock(shared=True)
    range_lock(first_id)
    now_s = (now or timezone.now()).timestamp()
    state = _load_state("e.customer_id BETWEEN %s AND %s", [first_id, last_id])
    past = _snapshot_scores(state.ids, day - timedelta(days=TREND_DAYS))
    scores_now = config.score(state.decay_sum, now_s)
    trend = scores_now - past  # NaN where there is no snapshot from 30 days ago
    result, scores, codes, p_alive = _stage_and_write(
        state, now_s, config, _latest_fit(), trend=trend
    )
    for block in snapshots.pack_blocks(state.ids, scores, codes, p_alive):
        ScoreSnapshot.objects.update_or_create(
            day=day,
            block=block.block,
            defaults={"scores": block.scores, "stages": block.stages, "p_alive": block.p_alive},
        )
    return RangeResult(result.customers, result.changes)


def _snapshot_scores(ids: np.ndarray, day: date) -> np.ndarray:
    result = np.full(len(ids), np.nan)
    if len(ids) == 0:
        return result
    blocks = ids // snapshots.BLOCK_SIZE
    stored = dict(
        ScoreSnapshot.objects.filter(day=day, block__in=np.unique(blocks).tolist()).values_list(
            "block", "scores"
        )
    )
    for block, blob in stored.items():
        mask = blocks == block
        result[mask] = snapshots.unpack_scores(blob)[ids[mask] % snapshots.BLOCK_SIZE]
    return result


def stage_daily_record(day: date) -> None:
    """Customers and revenue per stage for ``day`` (dashboard trend lines); idempotent."""
    from django.db.models import Count, Sum

    rows = Engagement.objects.values("stage").annotate(
        n=Count("customer_id"), revenue=Sum("customer__lifetime_revenue")
    )
    with transaction.atomic():
        StageDaily.objects.filter(day=day).delete()
        StageDaily.objects.bulk_create(
            [
                StageDaily(day=day, stage=r["stage"], customers=r["n"], revenue=r["revenue"] or 0)
                for r in rows
            ]
        )


# --- model fit ---------------------------------------------------------------------------


def engagement_fit(*, as_of: datetime | None = None) -> ModelFit:
    """Fit the MBG/NBD model on every acting customer's (x, t_x, T) as of ``as_of``.

    Activity is read from the maintained engagement rows (one sequential read), not from
    touchpoints; for an ``as_of`` in the past it is recomputed from touchpoints before it.
    """
    started = time.perf_counter()
    as_of = as_of or timezone.now()
    x, t_x, age = _fit_inputs(as_of)
    if len(x) == 0:
        raise ValueError("No customer has an engagement action before this date; nothing to fit.")
    fitted = bgnbd.fit(x, t_x, age)
    return ModelFit.objects.create(
        as_of=as_of,
        r=fitted.params.r,
        alpha=fitted.params.alpha,
        a=fitted.params.a,
        b=fitted.params.b,
        customers=fitted.n_customers,
        log_likelihood=fitted.log_likelihood,
        converged=fitted.converged,
        seconds=time.perf_counter() - started,
    )


def _fit_inputs(as_of: datetime) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    as_of_s = as_of.timestamp()
    with connection.cursor() as cursor:
        if abs(timezone.now().timestamp() - as_of_s) < DAY:
            e = Engagement._meta.db_table
            cursor.execute(
                f"SELECT frequency, {_epoch_sql('first_engagement_at')}, "
                f"{_epoch_sql('last_engagement_at')} FROM {e} WHERE frequency > 0"
            )
        else:
            t = Touchpoint._meta.db_table
            tt = TouchpointType._meta.db_table
            cursor.execute(
                f"SELECT COUNT(*), MIN({_epoch_sql('tp.occurred_at')}), "
                f"MAX({_epoch_sql('tp.occurred_at')}) FROM {t} tp "
                f"JOIN {tt} ty ON ty.id = tp.type_id "
                f"WHERE ty.counts_as_engagement AND ty.is_active AND tp.occurred_at <= %s "
                f"GROUP BY tp.customer_id",
                [as_of],
            )
        data = np.array(cursor.fetchall(), dtype=float).reshape(-1, 3)
    freq, first, last = data[:, 0], data[:, 1], data[:, 2]
    keep = first <= as_of_s
    freq, first, last = freq[keep], first[keep], np.minimum(last[keep], as_of_s)
    t_x = (last - first) / DAY
    age = (as_of_s - first) / DAY
    return freq - 1, t_x, np.maximum(age, t_x)


# --- explanation -------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeContribution:
    key: str
    label: str
    channel: str
    points: float  # decayed raw points this type contributes now
    share: float  # fraction of the positive raw score
    touchpoints: int


@dataclass(frozen=True)
class EngagementExplanation:
    score: float
    raw_points: float
    contributions: list[TypeContribution]
    stage: stages.StageExplanation
    p_alive: float | None


def engagement_explain(
    customer: Customer, *, now: datetime | None = None, top: int = 5
) -> EngagementExplanation:
    """Why this customer's score and stage are what they are, for screens and the API.

    Contributions are summed over the customer's own touchpoints (one indexed scan), so
    they add up exactly to the live score's raw points.
    """
    config = engine_config()
    now_s = (now or timezone.now()).timestamp()
    rows = list(
        Touchpoint.objects.filter(customer=customer, type__is_active=True).values_list(
            "type__key", "type__label", "type__channel", "type__weight", "occurred_at"
        )
    )
    per_type: dict[str, list] = {}
    for key, label, channel, weight, occurred in rows:
        points = float(weight) * math.exp(
            -(now_s - occurred.timestamp()) * decay.decay_exponent_scale(config.half_life_days)
        )
        entry = per_type.setdefault(key, [label, channel, 0.0, 0])
        entry[2] += points
        entry[3] += 1
    raw = sum(e[2] for e in per_type.values())
    positive = sum(max(e[2], 0.0) for e in per_type.values()) or 1.0
    contributions = sorted(
        (
            TypeContribution(k, e[0], e[1], e[2], max(e[2], 0.0) / positive, e[3])
            for k, e in per_type.items()
        ),
        key=lambda c: -abs(c.points),
    )[:top]
    state = _load_state("e.customer_id = %s", [customer.pk])
    if len(state.ids) == 0:
        raise Engagement.DoesNotExist(f"Customer {customer.pk} has no engagement state yet.")
    p_alive = _p_alive(state, now_s, _latest_fit())
    inputs = stages.StageInputs.single(
        now=now_s / DAY,
        signup=float(state.signup[0]) / DAY,
        first_action=_none_if_nan(state.first[0] / DAY),
        last_action=_none_if_nan(state.last[0] / DAY),
        n_actions=float(state.frequency[0]),
        expected_gap=_none_if_nan(_expected_gap_days(state)[0]),
        p_alive=_none_if_nan(p_alive[0]),
        prev_stage=int(state.stage[0]),
        stage_since=_none_if_nan(state.stage_since[0] / DAY),
    )
    return EngagementExplanation(
        score=float(config.score(state.decay_sum[0], now_s)),
        raw_points=raw,
        contributions=contributions,
        stage=stages.explain(inputs, config.thresholds),
        p_alive=_none_if_nan(p_alive[0]),
    )


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db import connection, transaction
from django.db.models import ExpressionWrapper, F, FloatField, Value
from django.db.models.functions import Exp, Greatest
from django.utils import timezone

from customers.engine import bgnbd, decay, snapshots, stages
from customers.locks import engine_write_lock, engine_write_session_lock, range_lock
from customers.models import (
    Customer,
    Engagement,
    EngagementSettings,
    ModelFit,
    PendingTouchpoint,
    ScoreSnapshot,
    ScoreState,
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


def score_expression(
    now: datetime, config: EngineConfig, decay_sum: str = "score_state__decay_sum"
) -> ExpressionWrapper:
    """SQL for the live 0–100 score: ``100·(1 − e^(−max(decay_sum, 0)·c))`` (decay.py steps
    3 and 5 with every per-query constant folded into ``c``). ``decay_sum`` is the field path
    from the queryset's model (the default suits ``Customer`` querysets). The exponent is
    clamped at −700: PostgreSQL raises on ``exp`` underflow, and e^−700 is 0 for a score."""
    growth_inverse = math.exp(
        -(now.timestamp() - config.epoch) * decay.decay_exponent_scale(config.half_life_days)
    )
    c = growth_inverse * decay.LN2 / config.half_point
    return ExpressionWrapper(
        Value(100.0)
        * (
            Value(1.0)
            - Exp(Greatest(Greatest(F(decay_sum), Value(0.0)) * Value(-c), Value(-700.0)))
        ),
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
    ScoreState.objects.bulk_create(
        [ScoreState(customer_id=cid) for cid in customer_ids],
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


_STAGE_NAMES = np.array(stages.STAGES, dtype=object)
_RULE_NAMES = np.array(stages.RULE_IDS, dtype=object)
_TIMESTAMP = "timestamp with time zone"


def _pg_array_literal(values: np.ndarray) -> str:
    """A PostgreSQL array literal (``{1.5,NaN,…}``) of a numeric or fixed-vocabulary text
    array, cast in SQL (``%s::float8[]``).

    ``repr`` round-trips every float exactly, and joining one string is ~4× faster than the
    driver adapting a list of Python floats one by one (which dominated a refresh batch's
    Python time). Text values are engine vocabulary (stage and rule names), never user input.
    """
    if values.dtype.kind == "f":
        items = map(repr, values.tolist())  # nan, inf and -inf are valid float8 input
    elif values.dtype.kind in "iub":
        items = map(str, values.astype(np.int64).tolist())
    else:
        texts = [str(v) for v in values.tolist()]
        if any('"' in t or "\\" in t for t in texts):
            raise ValueError("Array literal text must not contain quotes or backslashes.")
        items = (f'"{t}"' for t in texts)
    return "{" + ",".join(items) + "}"


def _write_columns(
    table: str,
    ids: np.ndarray,
    columns: dict[str, np.ndarray],
    *,
    tids: np.ndarray | None = None,
) -> None:
    """UPDATE ``table`` SET each column to its value per id (key ``customer_id``).

    Values come as arrays: floats with NaN for NULL, timestamps as epoch seconds (NaN or
    ±inf for NULL). PostgreSQL gets one array parameter per column and converts in SQL
    (``unnest``, ``to_timestamp``): no Python object per value and no 60,000-placeholder
    statements. SQLite gets rows for ``executemany``.

    ``tids`` (PostgreSQL): where each row was read in this transaction (see ``_State.tids``);
    the update then reaches each row by a TID scan instead of a primary-key descent. The key
    is still checked, and if any row is not where it was read (callers pass tids only while
    holding the engine write lock, under which nothing else updates these rows) the whole
    write is redone by key: never a row skipped or written to the wrong customer.
    """
    if len(ids) == 0:
        return
    types = _column_types(table) if connection.vendor == "postgresql" else {}
    names = list(columns)
    if connection.vendor == "postgresql":
        params: list[str] = [_pg_array_literal(ids.astype(np.int64))]
        selects = []
        for name in names:
            values = columns[name]
            kind = types[name]
            if kind == _TIMESTAMP:
                values = np.where(np.isfinite(values), values, np.nan)
                kind = "float8"
            params.append(_pg_array_literal(values))
            selects.append(f"%s::{kind}[]")
        assignments = ", ".join(
            f"{name} = to_timestamp(NULLIF(v.{name}, 'NaN'))"
            if types[name] == _TIMESTAMP
            else f"{name} = NULLIF(v.{name}, 'NaN')"
            if columns[name].dtype.kind == "f"
            else f"{name} = v.{name}"
            for name in names
        )
        by_tid = tids is not None and bool(np.isfinite(tids).all())
        if by_tid:
            blocks, offsets = np.divmod(tids.astype(np.int64), 65536)
            params.append(
                "{" + ",".join(map('"({},{})"'.format, blocks.tolist(), offsets.tolist())) + "}"
            )
            selects.append("%s::tid[]")
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} FROM unnest(%s::bigint[], "
                f"{', '.join(selects)}) AS v(customer_id, {', '.join(names)}"
                f"{', tid' if by_tid else ''}) WHERE t.customer_id = v.customer_id"
                + (" AND t.ctid = v.tid" if by_tid else ""),
                params,
            )
            written = cursor.rowcount
        if by_tid and written != len(ids):  # a row was not where it was read: by key, all
            _write_columns(table, ids, columns)
        return
    converted = []
    for name in names:
        values = columns[name]
        if name.endswith(("_at", "_since")):
            converted.append([_to_datetime(v) for v in values.tolist()])
        elif values.dtype.kind == "f":
            converted.append([None if math.isnan(v) else v for v in values.tolist()])
        else:
            converted.append(values.tolist())
    assignments = ", ".join(f"{name} = %s" for name in names)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET {assignments} WHERE customer_id = %s",
            list(zip(*converted, ids.tolist(), strict=True)),
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
    rule: np.ndarray  # codes; -1 = none recorded
    # PostgreSQL: where each score-state row was read (block·65536 + offset; NaN = unknown),
    # so the write goes straight to the row instead of down the primary key again.
    tids: np.ndarray | None = None


_STATE_COLUMNS = (
    f"{_epoch_sql('c.signup_date')}, {_epoch_sql('s.first_engagement_at')}, "
    f"{_epoch_sql('s.last_engagement_at')}, COALESCE(s.frequency, 0), "
    f"COALESCE(s.decay_sum, 0), s.stage_code, {_epoch_sql('s.stage_since')}, s.stage_rule_code"
)
#: The same columns as float8 for the binary read (NULL as NaN; a never-evaluated stage or
#: rule as -1).
_SIGNUP_FLOAT = f"COALESCE({_epoch_sql('c.signup_date')}, 'NaN')"
_STATE_COLUMNS_FLOAT = (
    f"{_SIGNUP_FLOAT}, "
    f"COALESCE({_epoch_sql('s.first_engagement_at')}, 'NaN'), "
    f"COALESCE({_epoch_sql('s.last_engagement_at')}, 'NaN'), "
    f"COALESCE(s.frequency, 0)::float8, COALESCE(s.decay_sum, 0), "
    f"COALESCE(s.stage_code, -1)::float8, "
    f"COALESCE({_epoch_sql('s.stage_since')}, 'NaN'), "
    f"COALESCE(s.stage_rule_code, -1)::float8"
)
_STATE_WIDTH = 9  # id + the eight columns above


def _load_state(where_sql: str, params: Sequence) -> _State:
    """Engine state of the customers matching ``where_sql`` (aliases: ``s`` score state,
    ``c`` customer), ordered by id."""
    postgres = connection.vendor == "postgresql"
    sql = (
        f"SELECT s.customer_id{'::float8' if postgres else ''}, "
        f"{_STATE_COLUMNS_FLOAT if postgres else _STATE_COLUMNS} "
        f"FROM {ScoreState._meta.db_table} s "
        f"JOIN {Customer._meta.db_table} c ON c.id = s.customer_id WHERE {where_sql} "
        + ("" if postgres else "ORDER BY s.customer_id")
    )
    if postgres:
        return _state_from_matrix(_fetch_float_matrix(sql, params, _STATE_WIDTH))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return _state_from_rows(cursor.fetchall())


def _fetch_float_matrix(
    select_sql: str, params: Sequence | dict, width: int, *, with_sql: str = ""
) -> np.ndarray:
    """PostgreSQL: the rows of ``select_sql`` — ``width`` non-NULL float8 columns, the first
    a unique key — as a (rows, width) array ordered by that key.

    The server packs each column into one ``bytea`` of 8-byte big-endian floats
    (``string_agg(float8send(…))``), so the driver parses ``width`` values instead of one
    Python object per value, which cost more than the query for a refresh batch.
    ``with_sql`` is a leading ``WITH a AS (…), b AS (…),`` the select may use (a
    data-modifying ``WITH`` must stay at the top level).
    """
    names = [f"c{i}" for i in range(width)]
    packed = ", ".join(f"string_agg(float8send({n}), ''::bytea ORDER BY c0)" for n in names)
    head = f"{with_sql} " if with_sql else "WITH "
    sql = (
        f"{head}engine_rows({', '.join(names)}) AS ({select_sql}) SELECT {packed} FROM engine_rows"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None or row[0] is None:
        return np.zeros((0, width))
    return np.column_stack([np.frombuffer(bytes(col), dtype=">f8") for col in row]).astype(
        np.float64
    )


def _empty_state() -> _State:
    empty = np.zeros(0)
    codes = empty.astype(np.int64)
    return _State(codes, empty, empty, empty, empty, empty, codes, empty, codes)


def _state_from_matrix(m: np.ndarray) -> _State:
    """Columns as ``_STATE_COLUMNS_FLOAT`` gives them, after the id."""
    if len(m) == 0:
        return _empty_state()
    codes = m[:, 6].astype(np.int64)
    since = m[:, 7].copy()
    codes[np.isnan(since)] = stages.NO_STAGE  # default "new" row never evaluated yet
    return _State(
        ids=m[:, 0].astype(np.int64),
        signup=m[:, 1].copy(),
        first=m[:, 2].copy(),
        last=m[:, 3].copy(),
        frequency=m[:, 4].copy(),
        decay_sum=m[:, 5].copy(),
        stage=codes,
        stage_since=since,
        rule=m[:, 8].astype(np.int64),
    )


def _state_from_rows(rows: list[tuple]) -> _State:
    """Rows of (id, signup, first, last, frequency, decay_sum, stage code, stage_since, rule
    code)."""
    if not rows:
        return _empty_state()
    columns = list(zip(*rows, strict=True))[:9]
    ids, signup, first, last, freq, dsum, stage_codes, since, rule_codes = columns
    since_arr = np.array(since, dtype=float)
    codes = np.array([-1 if c is None else c for c in stage_codes], dtype=np.int64)
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
        rule=np.array([-1 if r is None else r for r in rule_codes], dtype=np.int64),
    )


def _load_state_ids(ids: Sequence[int]) -> _State:
    if connection.vendor == "postgresql":
        return _load_state("s.customer_id = ANY(%s)", [list(ids)])
    return _load_state(f"s.customer_id IN ({', '.join(['%s'] * len(ids))})", list(ids))


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
    live: dict[str, np.ndarray] = {
        # Strictly after now: a boundary crossed exactly now would otherwise stay due and
        # be picked up by the refresh's due loop again and again.
        "stage_due_at": np.where(result.due_at * DAY <= now, now + 1.0, result.due_at * DAY),
        "p_alive": p_alive,
        "expected_gap_days": gap,
        "computed_at": np.full(n, now),
        "stage_code": result.stage,
        "stage_rule_code": result.rule,
        "stage_since": np.where(changed, now, state.stage_since),
    }
    if write_activity:
        live["decay_sum"] = state.decay_sum
        live["first_engagement_at"] = state.first
        live["last_engagement_at"] = state.last
        live["frequency"] = state.frequency.astype(np.int64)
    _write_columns(ScoreState._meta.db_table, state.ids, live, tids=state.tids)
    # The stage row only where something on it moves: on most refreshes, nowhere.
    write = changed | (result.rule != state.rule) if trend is None else np.ones(n, dtype=bool)
    stage_columns: dict[str, np.ndarray] = {
        "stage": _STAGE_NAMES[result.stage[write]],
        "stage_rule": _RULE_NAMES[result.rule[write]],
        "stage_since": np.where(changed, now, state.stage_since)[write],
    }
    if trend is not None:
        stage_columns["trend_30d"] = trend
    _write_columns(Engagement._meta.db_table, state.ids[write], stage_columns)
    now_dt = _to_datetime(now)
    moved = np.flatnonzero(changed)
    _stage_changes_insert(
        ids=state.ids[moved],
        from_stage=np.where(state.stage[moved] < 0, "", _STAGE_NAMES[state.stage[moved]]),
        to_stage=_STAGE_NAMES[result.stage[moved]],
        at=now_dt,
        score=scores[moved],
        p_alive=p_alive[moved],
        rule=_RULE_NAMES[result.rule[moved]],
    )
    return StagePassResult(n, len(moved)), scores, result.stage, p_alive


def _stage_changes_insert(
    *,
    ids: np.ndarray,
    from_stage: np.ndarray,
    to_stage: np.ndarray,
    at: datetime,
    score: np.ndarray,
    p_alive: np.ndarray,
    rule: np.ndarray,
) -> None:
    """Write stage-change rows; PostgreSQL: one ``INSERT … SELECT FROM unnest`` of arrays."""
    if len(ids) == 0:
        return
    p_alive_values = [None if math.isnan(v) else v for v in p_alive.tolist()]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {StageChange._meta.db_table} (customer_id, from_stage, to_stage, "
                f"changed_at, score, p_alive, rule) SELECT c, f, t, %s, s, p, r FROM unnest("
                f"%s::bigint[], %s::text[], %s::text[], %s::float8[], %s::float8[], %s::text[]) "
                f"AS v(c, f, t, s, p, r)",
                [
                    at,
                    ids.tolist(),
                    from_stage.tolist(),
                    to_stage.tolist(),
                    score.tolist(),
                    p_alive_values,
                    rule.tolist(),
                ],
            )
        return
    StageChange.objects.bulk_create(
        [
            StageChange(
                customer_id=c, from_stage=f, to_stage=t, changed_at=at, score=s, p_alive=p, rule=r
            )
            for c, f, t, s, p, r in zip(
                ids.tolist(),
                from_stage.tolist(),
                to_stage.tolist(),
                score.tolist(),
                p_alive_values,
                rule.tolist(),
                strict=True,
            )
        ],
        batch_size=5_000,
    )


# --- incremental refresh -----------------------------------------------------------------


@dataclass(frozen=True)
class RefreshResult:
    touchpoints_applied: int
    customers: int
    stage_changes: int
    seconds: float


def _drain_and_load(limit: int, config: EngineConfig, now: datetime) -> tuple[_State, int]:
    """PostgreSQL, one statement: claim and delete up to ``limit`` queued touchpoints, sum
    their decay terms and activity per customer, and return those customers' state with the
    sums already added; plus the number of touchpoints drained.

    One round trip instead of four, and lookups driven by the few changed customers with
    planner settings that say so: the refresh touches scattered rows, where index lookups
    beat the scans a default plan picks for 5,000 ids out of a million. A customer missing
    its engine rows (an ingest path that skipped ``engine_rows_ensure``) gets them here.
    """
    weights, engaging = _type_arrays()
    pending = PendingTouchpoint._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL random_page_cost = 1.1")
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cursor.execute("SET LOCAL jit = off")  # compiling costs more than this query runs
    with_sql = f"""
            WITH drained AS (
                DELETE FROM {pending} WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM {pending} ORDER BY id
                    LIMIT %(limit)s FOR UPDATE SKIP LOCKED))
                RETURNING touchpoint_id
            ),
            deltas AS (
                SELECT tp.customer_id,
                       COALESCE(SUM((%(w)s::float8[])[tp.type_id + 1] * exp(
                           (date_part('epoch', tp.occurred_at) - %(epoch)s) * %(scale)s)), 0)
                           AS decay,
                       MIN(date_part('epoch', tp.occurred_at))
                           FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS first_at,
                       MAX(date_part('epoch', tp.occurred_at))
                           FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS last_at,
                       COUNT(*) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS n,
                       COUNT(*) AS touchpoints
                FROM drained JOIN {Touchpoint._meta.db_table} tp ON tp.id = drained.touchpoint_id
                GROUP BY tp.customer_id
                ORDER BY tp.customer_id  -- lookups below in key order: each page read once
            ),
            """
    # The signup date only matters while a customer could still be "new" (their first action
    # within the new-customer window) or has never acted; skipping the customer table's row
    # otherwise saves a third of the refresh's random reads. Without it the stage rules see
    # origin = first action, older than the window: not new, as with the signup date.
    signup_sql = (
        f"CASE WHEN s.first_engagement_at < %(new_cutoff)s THEN 'NaN'::float8 ELSE "
        f"COALESCE((SELECT {_epoch_sql('c.signup_date')} FROM {Customer._meta.db_table} c "
        f"WHERE c.id = d.customer_id), 'NaN') END"
    )
    select_sql = f"""
            SELECT d.customer_id::float8,
                   {_STATE_COLUMNS_FLOAT.replace(_SIGNUP_FLOAT, signup_sql, 1)},
                   d.decay, COALESCE(d.first_at, 'NaN'), COALESCE(d.last_at, 'NaN'),
                   d.n::float8, d.touchpoints::float8,
                   COALESCE((s.ctid::text::point)[0] * 65536 + (s.ctid::text::point)[1], 'NaN'),
                   (s.customer_id IS NULL)::int::float8
            FROM deltas d
            LEFT JOIN {ScoreState._meta.db_table} s ON s.customer_id = d.customer_id
            """
    params = {
        "limit": limit,
        "w": weights,
        "e": engaging,
        "epoch": config.epoch,
        "scale": decay.decay_exponent_scale(config.half_life_days),
        "new_cutoff": now - timedelta(days=config.thresholds.new_window_days),
    }
    m = _fetch_float_matrix(select_sql, params, _STATE_WIDTH + 7, with_sql=with_sql)
    if len(m) == 0:
        return _empty_state(), 0
    missing = m[m[:, -1] > 0, 0].astype(np.int64).tolist()
    if missing:
        engine_rows_ensure(missing)
    state = _state_from_matrix(m)
    # Unread signup (see signup_sql): the first action stands in, which the rules treat alike.
    state.signup = np.where(np.isnan(state.signup), state.first, state.signup)
    extra = m[:, _STATE_WIDTH : _STATE_WIDTH + 5]
    state.decay_sum += extra[:, 0]
    state.first = np.fmin(state.first, extra[:, 1])
    state.last = np.fmax(state.last, extra[:, 2])
    state.frequency += extra[:, 3]
    # Rows just created for missing customers were not read: found by key when written.
    state.tids = np.where(m[:, -1] > 0, np.nan, m[:, -2])
    return state, int(extra[:, 4].sum())


def _drain_pending(limit: int) -> list[tuple[int, int]]:
    """SQLite: claim and delete up to ``limit`` queued touchpoints (writers are serialized
    there, so no row locks are needed): (touchpoint id, customer id)."""
    table = PendingTouchpoint._meta.db_table
    with connection.cursor() as cursor:
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
    """SQLite: aggregate queued touchpoints per customer (applied with the stage write)."""
    t = Touchpoint._meta.db_table
    tt = TouchpointType._meta.db_table
    with connection.cursor() as cursor:
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
            _asynchronous_commit()
            if connection.vendor == "postgresql":
                state, drained = _drain_and_load(batch_size, config, now_dt)
            else:
                pending = _drain_pending(batch_size)
                deltas = _pending_deltas([t for t, _ in pending], config)
                state = _apply_deltas(_load_state_ids(deltas.ids.tolist()), deltas)
                drained = len(pending)
            if not drained:
                break
            result, *_ = _stage_and_write(state, now_s, config, params, write_activity=True)
            applied += drained
            customers += result.customers
            changes += result.changes
        if drained < batch_size:
            break  # the queue was drained; rows committed since wait for the next run
    while True:
        with transaction.atomic():
            engine_write_lock(shared=False)
            if _rescore_in_progress():
                break
            _asynchronous_commit()
            due_ids = list(
                ScoreState.objects.filter(stage_due_at__lte=now_dt)
                .order_by("stage_due_at")
                .values_list("customer_id", flat=True)[:batch_size]
            )
            if not due_ids:
                break
            state = _load_state_ids(due_ids)
            result, *_ = _stage_and_write(state, now_s, config, params)
            customers += result.customers
            changes += result.changes
        if len(due_ids) < batch_size:
            break  # every due customer is re-staged, each now due strictly after ``now``
    return RefreshResult(applied, customers, changes, time.perf_counter() - started)


def _asynchronous_commit() -> None:
    """PostgreSQL: let this transaction's commit return before its WAL reaches disk.

    Safe for a refresh batch: a server crash can lose only whole, recently committed
    transactions (never part of one), and a lost batch loses its queue deletions with its
    writes, so the touchpoints are simply applied again by the next run. It saves a WAL
    flush per batch (``synchronous_commit`` in the PostgreSQL docs, "Asynchronous Commit").
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


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
        state = _load_state("s.customer_id BETWEEN %s AND %s", [first_id, last_id])
        result, *_ = _stage_and_write(state, now_s, config, _latest_fit())
        changes = result.changes
    return RangeResult(customers, changes)


def staging_tables(run_id: int) -> tuple[str, str]:
    return f"engine_rescore_{int(run_id)}", f"engine_rescore_pending_{int(run_id)}"


def history_aggregate_sql(*, activity: bool) -> str:
    """SQL (PostgreSQL): per-customer decay sum (and activity) over all touchpoints up to
    ``%(until)s``, with parameters from ``history_aggregate_params``.

    Weights and flags come as arrays indexed by type id: no join, so the planner streams the
    covering (customer, time) INCLUDE (type) index in customer order into a group
    aggregate (a join breaks the order and makes it hash 20M rows into 1M groups, spilling
    at default work_mem). Run it with ``enable_hashagg`` and ``enable_sort`` off
    (``_streaming_aggregate``): with sorting allowed the planner may sort 20M rows.
    """
    activity_sql = (
        """,
           MIN(tp.occurred_at) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS first_at,
           MAX(tp.occurred_at) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS last_at,
           COUNT(*) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS n"""
        if activity
        else ""
    )
    return f"""
        SELECT tp.customer_id,
               COALESCE(SUM((%(w)s::float8[])[tp.type_id + 1]
                   * exp((date_part('epoch', tp.occurred_at) - %(epoch)s) * %(scale)s)), 0)
                   AS decay_sum{activity_sql}
        FROM {Touchpoint._meta.db_table} tp
        WHERE tp.occurred_at <= %(until)s
        GROUP BY tp.customer_id
    """


def history_aggregate_params(
    config: EngineConfig,
    history_until: datetime | None = None,
    types: Sequence[tuple[int, float, bool, bool]] | None = None,
) -> dict:
    """Parameters for ``history_aggregate_sql``. ``types`` — (id, weight, counts as
    engagement, active) per type — replaces the stored ones, e.g. to preview a change."""
    weights, engaging = _type_arrays(types)
    return {
        "w": weights,
        "e": engaging,
        "epoch": config.epoch,
        "scale": decay.decay_exponent_scale(config.half_life_days),
        "until": history_until or datetime.max.replace(tzinfo=UTC),
    }


def _streaming_aggregate(cursor) -> None:
    cursor.execute("SET LOCAL enable_hashagg = off")
    cursor.execute("SET LOCAL enable_sort = off")


def _snapshot_transaction(cursor) -> None:
    """Make the current transaction REPEATABLE READ (unless a caller's transaction owns it):
    the aggregate and the queue rows captured with it must come from one snapshot."""
    if connection.in_atomic_block and not connection.savepoint_ids:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


def engagement_rescore_prepare(run_id: int, *, history_until: datetime | None = None) -> int:
    """PostgreSQL phase A of a full rescore: every customer's aggregates in one parallel pass.

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
    staged, pending = staging_tables(run_id)
    params = history_aggregate_params(engine_config(), history_until)
    with engine_write_session_lock(), transaction.atomic(), connection.cursor() as cursor:
        _snapshot_transaction(cursor)
        cursor.execute(f"DROP TABLE IF EXISTS {staged}, {pending}")
        _streaming_aggregate(cursor)
        cursor.execute(
            f"CREATE UNLOGGED TABLE {staged} AS {history_aggregate_sql(activity=True)}", params
        )
        customers = cursor.rowcount
        cursor.execute(
            f"CREATE UNLOGGED TABLE {pending} AS SELECT id, customer_id "
            f"FROM {PendingTouchpoint._meta.db_table}"
        )
        cursor.execute(f"CREATE INDEX ON {staged} (customer_id)")
        cursor.execute(f"CREATE INDEX ON {pending} (customer_id)")
        cursor.execute(f"ANALYZE {staged}")
    return customers


SCORE_REBUILD_TABLE = "engine_score_rebuild"
SCORE_REBUILD_CAPTURED = "engine_score_rebuild_captured"


def engagement_scores_rebuild(
    *,
    history_until: datetime | None = None,
    on_swap: Callable[[int], bool] = lambda customers: True,
) -> int | None:
    """PostgreSQL: recompute every decay sum from history and swap the new table in.

    For a weight or half-life change, which moves decay sums only. Writing 1M rows back
    with ``UPDATE`` costs far more than computing them (a new row version per customer,
    index maintenance, WAL); building a fresh narrow table with one parallel
    ``CREATE TABLE … AS`` and swapping it in costs little more than reading the history.

    1. Hold the engine write lock (session level) throughout: no refresh batch runs.
    2. One REPEATABLE READ snapshot: the new table from the streaming aggregate, and the ids
       of the queued touchpoints that snapshot already counts.
    3. Build the new table's indexes (the old one still serves reads and inserts).
    4. One short transaction with the old table locked: add a zero row for every customer
       the aggregate has not (no touchpoints, or created since the snapshot: their queued
       touchpoints stay queued for the next refresh), delete the captured queue rows, call
       ``on_swap(customers)`` (the caller records progress; returning False abandons the
       swap), drop the old table and rename the new one with the old names of its indexes
       and constraints.

    A crash anywhere before step 4 commits leaves the old table untouched; the leftovers are
    dropped by the next attempt. Returns the number of customers, or None if abandoned.
    """
    score = ScoreState._meta.db_table
    fields = ScoreState._meta.concrete_fields
    columns = [f.column for f in fields]
    not_null = [f.column for f in fields if not f.null]
    new, captured = SCORE_REBUILD_TABLE, SCORE_REBUILD_CAPTURED
    params = history_aggregate_params(engine_config(), history_until)
    with engine_write_session_lock(), connection.cursor() as cursor:
        with transaction.atomic():
            _snapshot_transaction(cursor)
            cursor.execute(f"DROP TABLE IF EXISTS {new}, {captured}")
            _streaming_aggregate(cursor)
            # Both sides come in customer order: a merge join streams them; a hash join
            # would hash a million old rows and spill at default work_mem (7.0 s vs 5.1 s).
            cursor.execute("SET LOCAL enable_hashjoin = off")
            # Every column but the sum is carried over as it stands in this snapshot (no
            # refresh can change it until the swap: the write lock is held).
            carried = ", ".join(f"o.{c}" for c in columns if c not in ("customer_id", "decay_sum"))
            cursor.execute(
                f"CREATE TABLE {new}{_storage_options(cursor, score)} AS "
                f"SELECT o.customer_id, COALESCE(a.decay_sum, 0) "
                f"AS decay_sum, {carried} FROM {score} o LEFT JOIN "
                f"({history_aggregate_sql(activity=False)}) a ON a.customer_id = o.customer_id",
                params,
            )
            rebuilt = cursor.rowcount
            cursor.execute(
                f"ALTER TABLE {new} "
                + ", ".join(f"ALTER COLUMN {c} SET NOT NULL" for c in not_null)
            )
            # The oldest transaction this snapshot could not see: every row written since
            # has a newer xmin (see the swap).
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            snapshot_xmin = int(cursor.fetchone()[0]) % 2**32
            cursor.execute(
                f"CREATE UNLOGGED TABLE {captured} AS SELECT id, touchpoint_id "
                f"FROM {PendingTouchpoint._meta.db_table}"
            )
        indexes, constraints = _table_layout(cursor, score)
        cursor.execute("SET maintenance_work_mem = '256MB'")  # each index sorts in memory
        temp_names = []
        for i, (name, definition) in enumerate(indexes):
            temp = f"{new}_idx{i}"
            temp_names.append((temp, name))
            cursor.execute(_retarget_index(definition, name, temp, score, new))
        try:
            with transaction.atomic():
                cursor.execute(f"LOCK TABLE {score} IN ACCESS EXCLUSIVE MODE")
                # Customers created since the snapshot, as they stand. Only rows written since
                # (xmin no older than the snapshot's) are candidates: a scan with a cheap
                # filter and a few probes, not an anti-join of a million rows each way
                # (~1 s of locked time). Rows of customers deleted since the snapshot stay
                # behind until the nightly pass removes them (``engine_tables_vacuum``).
                cursor.execute(
                    f"INSERT INTO {new} ({', '.join(columns)}) SELECT {', '.join(columns)} "
                    f"FROM {score} o WHERE age(o.xmin) <= age(%s::text::xid) AND NOT EXISTS "
                    f"(SELECT 1 FROM {new} n WHERE n.customer_id = o.customer_id)",
                    [str(snapshot_xmin)],
                )
                customers = rebuilt + cursor.rowcount
                _apply_captured_activity(cursor, new, captured, params)
                cursor.execute(
                    f"DELETE FROM {PendingTouchpoint._meta.db_table} "
                    f"WHERE id IN (SELECT id FROM {captured})"
                )
                if not on_swap(customers):
                    raise _SwapAbandoned
                # Deferred FK checks queued on the old table (a caller's transaction) would
                # block the DROP: run them now.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"DROP TABLE {score}")
                cursor.execute(f"ALTER TABLE {new} RENAME TO {score}")
                for temp, name in temp_names:
                    cursor.execute(f"ALTER INDEX {temp} RENAME TO {name}")
                for name, kind, definition in constraints:
                    if kind == "p":
                        cursor.execute(
                            f"ALTER TABLE {score} ADD CONSTRAINT {name} "
                            f"PRIMARY KEY USING INDEX {name}"
                        )
                    else:  # foreign keys: enforced for new rows; every old row came from one
                        cursor.execute(
                            f"ALTER TABLE {score} ADD CONSTRAINT {name} {definition} NOT VALID"
                        )
        except _SwapAbandoned:
            customers = None
        finally:
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute(f"DROP TABLE IF EXISTS {new}, {captured}")
    if customers is not None:
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {score}")
    return customers


def _apply_captured_activity(cursor, table: str, captured: str, params: dict) -> None:
    """Add the captured queue rows' activity (first/last action, count) to the rebuilt
    ``table``: its sums include those touchpoints, but their queue rows also carried the
    activity the refresh would have applied. Those customers are marked due, so the next
    refresh re-stages them (a lapsed customer who came back becomes re-engaged)."""
    cursor.execute(
        f"""
        WITH activity AS (
            SELECT tp.customer_id,
                   MIN(tp.occurred_at) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS first_at,
                   MAX(tp.occurred_at) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS last_at,
                   COUNT(*) FILTER (WHERE (%(e)s::bool[])[tp.type_id + 1]) AS n
            FROM {captured} c JOIN {Touchpoint._meta.db_table} tp ON tp.id = c.touchpoint_id
            WHERE tp.occurred_at <= %(until)s
            GROUP BY tp.customer_id
        )
        UPDATE {table} AS s
        SET first_engagement_at = LEAST(s.first_engagement_at, activity.first_at),
            last_engagement_at = GREATEST(s.last_engagement_at, activity.last_at),
            frequency = s.frequency + activity.n,
            stage_due_at = now()
        FROM activity
        WHERE s.customer_id = activity.customer_id AND activity.n > 0
        """,
        params,
    )


class _SwapAbandoned(Exception):
    pass


def _storage_options(cursor, table: str) -> str:
    """`` WITH (fillfactor=80, …)`` as ``table`` has them, for a table built to replace it."""
    cursor.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table])
    options = cursor.fetchone()[0]
    return f" WITH ({', '.join(options)})" if options else ""


def _table_layout(cursor, table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """A table's indexes (name, definition) and constraints (name, kind, definition); the
    primary key's index is listed under its constraint's name."""
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = %s ORDER BY indexname",
        [table],
    )
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('p', 'f') ORDER BY contype DESC, conname",
        [table],
    )
    return indexes, cursor.fetchall()


def _retarget_index(definition: str, name: str, temp: str, table: str, new: str) -> str:
    """``CREATE [UNIQUE] INDEX name ON table …`` rewritten for the new table and a temp name."""
    head, _, tail = definition.partition(" ON ")
    head = head.replace(f"INDEX {name}", f"INDEX {temp}")
    on_table, _, rest = tail.partition(" USING ")
    return f"{head} ON {on_table.replace(table, new)} USING {rest}"


def _type_arrays(
    types: Sequence[tuple[int, float, bool, bool]] | None = None,
) -> tuple[list[float], list[bool]]:
    """Weight and engagement flag of every type, indexed by type id (inactive types count 0)."""
    if types is None:
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
    """Write a range's staged sums and activity back where they differ (one statement)."""
    staged, pending = staging_tables(run_id)
    sc = ScoreState._meta.db_table
    p = PendingTouchpoint._meta.db_table
    sql = f"""
        WITH consumed AS (
            DELETE FROM {p} WHERE id IN (
                SELECT id FROM {pending} WHERE customer_id BETWEEN %(lo)s AND %(hi)s)
        ),
        target AS (
            SELECT s2.customer_id, COALESCE(st.decay_sum, 0) AS decay_sum, st.first_at,
                   st.last_at, COALESCE(st.n, 0) AS n
            FROM {sc} s2 LEFT JOIN {staged} st
                ON st.customer_id = s2.customer_id AND st.customer_id BETWEEN %(lo)s AND %(hi)s
            WHERE s2.customer_id BETWEEN %(lo)s AND %(hi)s
        ),
        changed AS (
            UPDATE {sc} AS sc SET decay_sum = target.decay_sum,
                first_engagement_at = target.first_at, last_engagement_at = target.last_at,
                frequency = target.n
            FROM target
            WHERE sc.customer_id = target.customer_id
              AND (abs(sc.decay_sum - target.decay_sum)
                       > 1e-12 * greatest(abs(target.decay_sum), 1e-300)
                   OR sc.frequency <> target.n
                   OR sc.first_engagement_at IS DISTINCT FROM target.first_at
                   OR sc.last_engagement_at IS DISTINCT FROM target.last_at)
            RETURNING sc.customer_id
        )
        SELECT count(*) FROM changed
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"lo": first_id, "hi": last_id})
        return cursor.fetchone()[0]


def _rescore_range_numpy(first_id: int, last_id: int, config: EngineConfig, until: datetime) -> int:
    """SQLite: aggregate the range's history with numpy; write only customers that differ."""
    t = Touchpoint._meta.db_table
    tt = TouchpointType._meta.db_table
    PendingTouchpoint.objects.filter(customer_id__range=(first_id, last_id)).delete()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT tp.customer_id, CAST(ty.weight AS DOUBLE PRECISION), ty.counts_as_engagement, "
            f"{_epoch_sql('tp.occurred_at')} FROM {t} tp JOIN {tt} ty ON ty.id = tp.type_id "
            f"WHERE ty.is_active AND tp.customer_id BETWEEN %s AND %s AND tp.occurred_at <= %s",
            [first_id, last_id, until],
        )
        rows = cursor.fetchall()
    current = _load_state("s.customer_id BETWEEN %s AND %s", [first_id, last_id])
    n = len(current.ids)
    if n == 0:
        return 0
    decay_sum = np.zeros(n)
    freq = np.zeros(n)
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    if rows:
        data = np.array(rows, dtype=float).reshape(-1, 4)
        idx = np.searchsorted(current.ids, data[:, 0].astype(np.int64))
        engaging = data[:, 2].astype(bool)
        terms = decay.decay_terms(
            data[:, 1], data[:, 3], epoch=config.epoch, half_life_days=config.half_life_days
        )
        decay_sum = np.bincount(idx, weights=terms, minlength=n)
        freq = np.bincount(idx, weights=engaging.astype(float), minlength=n)
        np.minimum.at(first, idx[engaging], data[engaging, 3])
        np.maximum.at(last, idx[engaging], data[engaging, 3])
    first = np.where(np.isfinite(first), first, np.nan)
    last = np.where(np.isfinite(last), last, np.nan)

    def differs(old: np.ndarray, new: np.ndarray) -> np.ndarray:  # to the millisecond
        return ~((np.round(old, 3) == np.round(new, 3)) | (np.isnan(old) & np.isnan(new)))

    sum_differs = np.abs(current.decay_sum - decay_sum) > 1e-12 * np.maximum(
        np.abs(decay_sum), 1e-300
    )
    activity_differs = (
        (current.frequency != freq) | differs(current.first, first) | differs(current.last, last)
    )
    write = sum_differs | activity_differs
    _write_columns(
        ScoreState._meta.db_table,
        current.ids[write],
        {
            "decay_sum": decay_sum[write],
            "frequency": freq[write].astype(np.int64),
            "first_engagement_at": first[write],
            "last_engagement_at": last[write],
        },
    )
    return int(write.sum())


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
        rescaled = ScoreState.objects.update(decay_sum=F("decay_sum") * factor)
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
    state = _load_state("s.customer_id BETWEEN %s AND %s", [first_id, last_id])
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


def engine_tables_vacuum() -> bool:
    """``VACUUM (ANALYZE)`` the engine's tables after a pass that rewrote every row.

    The nightly pass writes a new version of every engagement row; until vacuum runs, index
    lookups wade through the dead ones (the refresh's scattered reads grew ~8 buffers per
    customer on the benchmark) and the planner misjudges the tables. Autovacuum would get
    there eventually; the engine knows exactly when. PostgreSQL only, and only outside a
    transaction (VACUUM cannot run inside one). True if it ran.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        # Rows of customers deleted while a rebuild ran (its swap leaves them behind).
        cursor.execute(
            f"DELETE FROM {ScoreState._meta.db_table} s WHERE NOT EXISTS "
            f"(SELECT 1 FROM {Customer._meta.db_table} c WHERE c.id = s.customer_id)"
        )
        cursor.execute(f"VACUUM (ANALYZE) {Engagement._meta.db_table}, {ScoreState._meta.db_table}")
    return True


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
            cursor.execute(
                f"SELECT frequency, {_epoch_sql('first_engagement_at')}, "
                f"{_epoch_sql('last_engagement_at')} FROM {ScoreState._meta.db_table} "
                f"WHERE frequency > 0"
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
    state = _load_state("s.customer_id = %s", [customer.pk])
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

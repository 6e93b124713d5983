"""What a settings change would do, computed without writing anything.

``settings_preview`` answers, for proposed weights / flags / half-life / normalization /
stage thresholds: how many customers would change stage (from → to counts) and how the score
distribution would move (current vs proposed histogram over 0–100 in 5-point bins).

Steps:

1. Scores. Only when weights, active flags or the half-life change do decay sums change; then
   they are recomputed from history with the proposed types. PostgreSQL: one statement —
   the engine's streaming history aggregate (``history_aggregate_sql``) with proposed
   weights, bucketed in SQL, so a million customers never reach Python. SQLite (demo
   sizes): numpy over the touchpoints. Otherwise the stored sums are bucketed with the
   proposed normalization.
2. Stages. Stage rules do not read the score: they change only with thresholds or with the
   "counts as engagement" / active flags (which move first/last action and counts; those are
   re-aggregated from history as in step 1). The engine state is loaded in bulk and
   ``stages.evaluate`` runs vectorized twice at the same instant — current settings and
   proposed — so customers whose stage time alone is about to move are not counted as
   moved by the change. P(still engaged) is recomputed with the current model fit when
   activity changes, else the stored value is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from customers.engagement import (
    EngineConfig,
    engine_config,
    history_aggregate_params,
    history_aggregate_sql,
)
from customers.engine import bgnbd, decay, stages
from customers.models import Customer, Engagement, ModelFit, ScoreState, Touchpoint, TouchpointType

BIN_WIDTH = 5
BINS = 100 // BIN_WIDTH
DAY = decay.SECONDS_PER_DAY

TypeRow = tuple[int, float, bool, bool]  # id, weight, counts as engagement, active


@dataclass(frozen=True)
class StageMove:
    from_stage: str
    to_stage: str
    customers: int


@dataclass(frozen=True)
class SettingsPreview:
    customers: int
    bin_edges: list[int]  # left edges: 0, 5, …, 95
    current_counts: list[int]
    proposed_counts: list[int]
    moves: list[StageMove]  # largest first
    scores_recomputed: bool
    stages_reevaluated: bool

    @property
    def customers_moving(self) -> int:
        return sum(m.customers for m in self.moves)


def current_types() -> list[TypeRow]:
    return [
        (pk, float(w), bool(c), bool(a))
        for pk, w, c, a in TouchpointType.objects.values_list(
            "id", "weight", "counts_as_engagement", "is_active"
        )
    ]


def settings_preview(
    *,
    proposed: EngineConfig,
    types: Sequence[TypeRow],
    current: EngineConfig | None = None,
    now: datetime | None = None,
) -> SettingsPreview:
    """The impact of proposed settings (``proposed``: half-life, normalization, thresholds;
    ``types``: every type's proposed weight and flags), computed without writing."""
    now = now or timezone.now()
    current = current or engine_config()
    proposed = replace(proposed, epoch=current.epoch)
    stored = {t[0]: t for t in current_types()}
    proposed_types = {t[0]: (t[0], float(t[1]), bool(t[2]), bool(t[3])) for t in types}
    merged = [proposed_types.get(pk, row) for pk, row in stored.items()]

    def engaging(rows: Sequence[TypeRow]) -> set[int]:
        return {pk for pk, _w, counts, active in rows if counts and active}

    def weights(rows: Sequence[TypeRow]) -> dict[int, float]:
        return {pk: (w if active else 0.0) for pk, w, _c, active in rows}

    activity_changed = engaging(merged) != engaging(list(stored.values()))
    sums_changed = (
        weights(merged) != weights(list(stored.values()))
        or proposed.half_life_days != current.half_life_days
    )
    thresholds_changed = proposed.thresholds != current.thresholds

    customers = Customer.objects.count()
    current_counts = _stored_histogram(current, now)
    if sums_changed:
        proposed_counts = _history_histogram(proposed, merged, now, customers)
    else:
        proposed_counts = _stored_histogram(proposed, now)
    moves: list[StageMove] = []
    if activity_changed or thresholds_changed:
        moves = _stage_moves(current, proposed, merged if activity_changed else None, now)
    return SettingsPreview(
        customers=customers,
        bin_edges=list(range(0, 100, BIN_WIDTH)),
        current_counts=current_counts,
        proposed_counts=proposed_counts,
        moves=moves,
        scores_recomputed=sums_changed,
        stages_reevaluated=activity_changed or thresholds_changed,
    )


def _score_factor(config: EngineConfig, now: datetime) -> float:
    """c in ``score = 100·(1 − e^(−max(decay_sum, 0)·c))`` at ``now`` (decay.py steps 3, 5)."""
    growth_inverse = math.exp(
        -(now.timestamp() - config.epoch) * decay.decay_exponent_scale(config.half_life_days)
    )
    return growth_inverse * decay.LN2 / config.half_point


def _bucket_sql(sum_column: str) -> str:
    score = f"100.0 * (1.0 - exp(-greatest({sum_column}, 0) * %(c)s))"
    return f"least(floor(({score}) / {BIN_WIDTH})::int, {BINS - 1})"


def _counts(rows: Sequence[tuple[int, int]]) -> list[int]:
    counts = [0] * BINS
    for bucket, n in rows:
        counts[int(bucket)] += int(n)
    return counts


def _numpy_counts(scores: np.ndarray) -> list[int]:
    buckets = np.minimum((scores // BIN_WIDTH).astype(np.int64), BINS - 1)
    return np.bincount(buckets, minlength=BINS).tolist()


def _stored_histogram(config: EngineConfig, now: datetime) -> list[int]:
    """Score distribution from the stored decay sums under ``config``'s normalization."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {_bucket_sql('decay_sum')} AS b, count(*) "
                f"FROM {ScoreState._meta.db_table} GROUP BY b",
                {"c": _score_factor(config, now)},
            )
            return _counts(cursor.fetchall())
    sums = np.fromiter(ScoreState.objects.values_list("decay_sum", flat=True), dtype=float)
    return _numpy_counts(config.score(sums, now.timestamp()))


def _history_histogram(
    config: EngineConfig, types: Sequence[TypeRow], now: datetime, customers: int
) -> list[int]:
    """Score distribution recomputed from history with proposed weights and half-life;
    customers without touchpoints score 0."""
    if connection.vendor == "postgresql":
        params = history_aggregate_params(config, now, types)
        params["c"] = _score_factor(config, now)
        with transaction.atomic(), connection.cursor() as cursor:
            # As the engine runs it: stream the covering index into a group aggregate.
            cursor.execute("SET LOCAL enable_hashagg = off")
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute(
                f"SELECT {_bucket_sql('agg.decay_sum')} AS b, count(*) FROM "
                f"({history_aggregate_sql(activity=False)}) agg GROUP BY b",
                params,
            )
            counts = _counts(cursor.fetchall())
    else:
        _ids, sums, *_ = _history_numpy(config, types, now)
        counts = _numpy_counts(config.score(sums, now.timestamp()))
    counts[0] += customers - sum(counts)
    return counts


def _history_numpy(
    config: EngineConfig, types: Sequence[TypeRow], now: datetime
) -> tuple[np.ndarray, ...]:
    """SQLite: per customer with touchpoints — ids, decay sum, first/last engagement action
    (epoch seconds, NaN if none) and number of engagement actions, with proposed types."""
    size = max((t[0] for t in types), default=0) + 1
    weight = np.zeros(size)
    engaging = np.zeros(size, dtype=bool)
    for pk, w, counts, active in types:
        if active:
            weight[pk] = w
            engaging[pk] = counts
    rows = np.array(
        [
            (c, t, when.timestamp())
            for c, t, when in Touchpoint.objects.filter(occurred_at__lte=now).values_list(
                "customer_id", "type_id", "occurred_at"
            )
        ],
        dtype=float,
    ).reshape(-1, 3)
    ids, idx = np.unique(rows[:, 0].astype(np.int64), return_inverse=True)
    type_ids = rows[:, 1].astype(np.int64)
    terms = decay.decay_terms(
        weight[type_ids], rows[:, 2], epoch=config.epoch, half_life_days=config.half_life_days
    )
    sums = np.bincount(idx, weights=terms, minlength=len(ids))
    acts = engaging[type_ids]
    first = np.full(len(ids), np.inf)
    last = np.full(len(ids), -np.inf)
    np.minimum.at(first, idx[acts], rows[acts, 2])
    np.maximum.at(last, idx[acts], rows[acts, 2])
    n = np.bincount(idx, weights=acts.astype(float), minlength=len(ids))
    first[~np.isfinite(first)] = np.nan
    last[~np.isfinite(last)] = np.nan
    return ids, sums, first, last, n


def _history_activity(
    config: EngineConfig, types: Sequence[TypeRow], now: datetime
) -> tuple[np.ndarray, ...]:
    """Per customer with touchpoints: ids, first/last engagement action, action count."""
    if connection.vendor != "postgresql":
        ids, _sums, first, last, n = _history_numpy(config, types, now)
        return ids, first, last, n
    params = history_aggregate_params(config, now, types)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_hashagg = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(
            f"SELECT agg.customer_id, date_part('epoch', agg.first_at), "
            f"date_part('epoch', agg.last_at), agg.n "
            f"FROM ({history_aggregate_sql(activity=True)}) agg",
            params,
        )
        data = np.array(cursor.fetchall(), dtype=float).reshape(-1, 4)
    return data[:, 0].astype(np.int64), data[:, 1], data[:, 2], data[:, 3]


def _seconds(values) -> np.ndarray:
    return np.array([np.nan if v is None else v.timestamp() for v in values], dtype=float)


def _stage_moves(
    current: EngineConfig,
    proposed: EngineConfig,
    types: Sequence[TypeRow] | None,
    now: datetime,
) -> list[StageMove]:
    rows = list(
        Engagement.objects.order_by("customer_id").values_list(
            "customer_id",
            "customer__signup_date",
            "customer__score_state__first_engagement_at",
            "customer__score_state__last_engagement_at",
            "customer__score_state__frequency",
            "customer__score_state__expected_gap_days",
            "customer__score_state__p_alive",
            "stage",
            "stage_since",
        )
    )
    if not rows:
        return []
    ids, signup, first, last, freq, gap, p_alive, stage, since = zip(*rows, strict=True)
    ids_arr = np.array(ids, dtype=np.int64)
    signup_s = np.array(
        [datetime(d.year, d.month, d.day, tzinfo=now.tzinfo).timestamp() for d in signup]
    )
    since_s = _seconds(since)
    prev = np.array([stages.STAGE_CODE.get(s, stages.NO_STAGE) for s in stage], dtype=np.int64)
    prev[np.isnan(since_s)] = stages.NO_STAGE  # never staged yet, as the engine treats it
    base = stages.StageInputs(
        now=now.timestamp() / DAY,
        signup=signup_s / DAY,
        first_action=_seconds(first) / DAY,
        last_action=_seconds(last) / DAY,
        n_actions=np.array(freq, dtype=float),
        expected_gap=np.array([np.nan if g is None else g for g in gap], dtype=float),
        p_alive=np.array([np.nan if p is None else p for p in p_alive], dtype=float),
        prev_stage=prev,
        stage_since=since_s / DAY,
    )
    before = stages.evaluate(base, current.thresholds).stage
    after_inputs = base
    if types is not None:
        after_inputs = _with_activity(base, ids_arr, *_history_activity(proposed, types, now))
    after = stages.evaluate(after_inputs, proposed.thresholds).stage
    moved = before != after
    pairs, counts = np.unique(
        np.stack([before[moved], after[moved]], axis=1), axis=0, return_counts=True
    )
    moves = [
        StageMove(stages.STAGES[int(a)], stages.STAGES[int(b)], int(n))
        for (a, b), n in zip(pairs.reshape(-1, 2), counts, strict=True)
    ]
    return sorted(moves, key=lambda m: (-m.customers, m.from_stage, m.to_stage))


def _with_activity(
    base: stages.StageInputs,
    ids: np.ndarray,
    hist_ids: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    n: np.ndarray,
) -> stages.StageInputs:
    """``base`` with activity re-aggregated under proposed flags: own gap and P(still
    engaged) follow from it (P with the current model fit, as the engine computes it)."""
    new_first = np.full(len(ids), np.nan)
    new_last = np.full(len(ids), np.nan)
    new_n = np.zeros(len(ids))
    pos = np.searchsorted(ids, hist_ids)
    known = (pos < len(ids)) & (ids[np.minimum(pos, len(ids) - 1)] == hist_ids)
    new_first[pos[known]] = first[known] / DAY
    new_last[pos[known]] = last[known] / DAY
    new_n[pos[known]] = n[known]
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.where(new_n >= 2, (new_last - new_first) / (new_n - 1), np.nan)
    p = np.full(len(ids), np.nan)
    fit = ModelFit.objects.order_by("-created_at").first()
    acted = new_n >= 1
    if fit is not None and acted.any():
        x = new_n[acted] - 1
        t_x = np.where(x > 0, np.maximum(new_last[acted] - new_first[acted], 0.0), 0.0)
        age = np.maximum(base.now - new_first[acted], t_x)
        params = bgnbd.MBGParams(r=fit.r, alpha=fit.alpha, a=fit.a, b=fit.b)
        p[acted] = bgnbd.p_alive(params, x, t_x, age)
    return stages.StageInputs(
        now=base.now,
        signup=base.signup,
        first_action=new_first,
        last_action=new_last,
        n_actions=new_n,
        expected_gap=gap,
        p_alive=p,
        prev_stage=base.column("prev_stage"),
        stage_since=base.column("stage_since"),
    )

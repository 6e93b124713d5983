"""The engagement score: exponentially decayed touchpoint weights, kept by forward decay.

In plain words: every touchpoint adds its type's weight to the customer's score, and that
contribution halves every ``half_life`` days. The raw sum is mapped to 0–100 with a saturating
curve, so a score of 50 means "as engaged as ``half_point`` fresh points' worth".

Math (Cormode, Shkapenyuk, Srivastava & Xu 2009, "Forward Decay: A Practical Time Decay
Model for Streaming Systems"):

1. Contribution of touchpoint i at time t: ``w_i · 2^(−(t − t_i)/h)``.
2. Factor out t: ``Σ w_i 2^(−(t − t_i)/h) = 2^(−(t − E)/h) · Σ w_i 2^((t_i − E)/h)`` for any
   fixed epoch E. The stored per-customer ``decay_sum = Σ w_i 2^((t_i − E)/h)`` never changes
   as time passes; a new touchpoint adds one term (O(1)), whatever its age (backfills too).
3. Raw score at t: ``decay_sum · 2^(−(t − E)/h)``.
4. Rebase when ``(t − E)/h`` grows large (terms grow like 2^((t−E)/h), and float64 overflows
   near 2^1024): multiply every sum by ``2^(−(E' − E)/h)`` and move the epoch to E'.
5. Normalize: ``score = 100 · (1 − 2^(−raw / half_point))`` for raw > 0, else 0. Absolute (a
   customer's score does not depend on anyone else), monotone, bounded in [0, 100) and
   explainable: ``half_point`` raw points give 50, twice that 75, three times 87.5.

Because step 5 is monotone and step 3 multiplies every customer's sum by the same factor,
ordering customers by score equals ordering by ``decay_sum``, and a score band is a
``decay_sum`` range: ``score_bounds_to_decay_sum`` converts one for index-friendly queries.

Times are float seconds since the Unix epoch (``datetime.timestamp()``); half-lives in days.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

SECONDS_PER_DAY = 86_400.0
LN2 = math.log(2.0)
# Rebase well before overflow: 2^600 ≈ 4e180 leaves room for weights and sums of many terms.
REBASE_AFTER_HALF_LIVES = 600.0


def decay_exponent_scale(half_life_days: float) -> float:
    """Multiply (seconds since epoch) by this and ``exp`` it to get ``2^(Δt/h)``."""
    return LN2 / (half_life_days * SECONDS_PER_DAY)


def decay_terms(
    weights: ArrayLike, times: ArrayLike, *, epoch: float, half_life_days: float
) -> np.ndarray:
    """Forward-decay terms ``w · 2^((t − epoch)/h)`` of touchpoints (step 2)."""
    scale = decay_exponent_scale(half_life_days)
    return np.asarray(weights, dtype=float) * np.exp(
        (np.asarray(times, dtype=float) - epoch) * scale
    )


def raw_score(
    decay_sum: ArrayLike, now: float, *, epoch: float, half_life_days: float
) -> np.ndarray:
    """The decayed weight sum at ``now`` from stored forward-decay sums (step 3)."""
    return np.asarray(decay_sum, dtype=float) * np.exp(
        -(now - epoch) * decay_exponent_scale(half_life_days)
    )


def normalize(raw: ArrayLike, *, half_point: float) -> np.ndarray:
    """Map raw decayed points to a 0–100 score (step 5); negative raw gives 0."""
    raw_arr = np.nan_to_num(np.asarray(raw, dtype=float), nan=0.0, posinf=np.inf, neginf=0.0)
    positive = np.maximum(raw_arr, 0.0)
    return 100.0 * -np.expm1(-positive * LN2 / half_point)


def score(
    decay_sum: ArrayLike, now: float, *, epoch: float, half_life_days: float, half_point: float
) -> np.ndarray:
    """The 0–100 score at ``now`` (steps 3 and 5 together)."""
    return normalize(
        raw_score(decay_sum, now, epoch=epoch, half_life_days=half_life_days),
        half_point=half_point,
    )


def raw_for_score(score_value: float, *, half_point: float) -> float:
    """Inverse of ``normalize``: the raw points that give ``score_value`` (0 ≤ score < 100)."""
    if score_value <= 0:
        return 0.0
    if score_value >= 100:
        return math.inf
    return -half_point * math.log1p(-score_value / 100.0) / LN2


def score_bounds_to_decay_sum(
    low: float | None,
    high: float | None,
    now: float,
    *,
    epoch: float,
    half_life_days: float,
    half_point: float,
) -> tuple[float | None, float | None]:
    """Turn a score band [low, high] at ``now`` into a ``decay_sum`` range for an index scan.

    A bound of None stays open. A low bound of 0 or less is open too (every customer,
    including negative sums, scores at least 0).
    """
    growth = math.exp((now - epoch) * decay_exponent_scale(half_life_days))
    low_sum = None if low is None or low <= 0 else raw_for_score(low, half_point=half_point)
    high_sum = None if high is None or high >= 100 else raw_for_score(high, half_point=half_point)
    return (
        None if low_sum is None else low_sum * growth,
        None if high_sum is None else high_sum * growth,
    )


def rebase_factor(old_epoch: float, new_epoch: float, *, half_life_days: float) -> float:
    """Multiply stored sums by this when moving the epoch from old to new (step 4)."""
    return math.exp(-(new_epoch - old_epoch) * decay_exponent_scale(half_life_days))


def needs_rebase(now: float, *, epoch: float, half_life_days: float) -> bool:
    """True when ``now`` is so many half-lives past the epoch that sums near overflow."""
    return abs(now - epoch) / (half_life_days * SECONDS_PER_DAY) > REBASE_AFTER_HALF_LIVES


def brute_force_raw(
    weights: ArrayLike, times: ArrayLike, now: float, *, half_life_days: float
) -> float:
    """Reference: Σ w · 2^(−(now − t)/h) over the whole history (tests only)."""
    w = np.asarray(weights, dtype=float)
    t = np.asarray(times, dtype=float)
    return float(np.sum(w * np.exp(-(now - t) * decay_exponent_scale(half_life_days))))

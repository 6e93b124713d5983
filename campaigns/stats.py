"""Statistics for plan results: lift with a confidence interval, sample size, verdict, ROI and
the "best moment to act".

Pure functions over plain numbers or numpy arrays (vectorized: pass arrays to evaluate many
steps or segments at once); no database, no Django. ``campaigns/results.py`` loads the counts
with set-based SQL and calls these.

Methods and sources
-------------------
- **Lift CI**: difference of two independent proportions (treatment − control) with
  Newcombe's hybrid score interval, method 10 of R. G. Newcombe, "Interval estimation for the
  difference between independent proportions: comparison of eleven methods", *Statistics in
  Medicine* 17 (1998) 873–890. Each arm gets a Wilson score interval (E. B. Wilson, JASA 22
  (1927) 209–212) and the two are combined by "square-and-add". Unlike the Wald interval it
  never leaves [−1, 1], is not degenerate at 0/n or n/n, and holds its coverage at small
  counts and rates near 0 or 1 — re-engagement rates in a holdout of a few hundred customers
  are exactly that case.
- **Sample size / minimum detectable lift**: the normal-approximation formula for comparing two
  proportions with unequal allocation, without continuity correction (J. L. Fleiss, *Statistical
  Methods for Rates and Proportions*, 2nd ed. 1981, §3.2; S.-C. Chow, J. Shao, H. Wang, *Sample
  Size Calculations in Clinical Research*, 2nd ed. 2008, §4.2). Two-sided α = 0.05, power 0.8
  by default. The minimum detectable lift inverts it by bisection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

ArrayLike = Any  # float | int | numpy array; every function broadcasts


def _z(alpha: float) -> float:
    """Two-sided critical value: 1.959964 for α = 0.05."""
    return float(norm.ppf(1 - alpha / 2))


def wilson_interval(
    successes: ArrayLike, n: ArrayLike, *, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (no continuity correction) for x successes out of n.

    ``(p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n)``. NaN where n = 0.
    """
    x = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    z = _z(alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    hi = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lo, hi


def diff_ci(
    x_treat: ArrayLike,
    n_treat: ArrayLike,
    x_ctrl: ArrayLike,
    n_ctrl: ArrayLike,
    *,
    alpha: float = 0.05,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of proportions p_t − p_c with Newcombe's hybrid score interval (method 10).

    1. p_t = x_t/n_t, p_c = x_c/n_c; Wilson intervals (l_t, u_t) and (l_c, u_c).
    2. δ = p_t − p_c.
    3. lower = δ − sqrt((p_t − l_t)² + (u_c − p_c)²),
       upper = δ + sqrt((u_t − p_t)² + (p_c − l_c)²).

    Returns ``(diff, lower, upper)`` as arrays (0-d for scalar input); NaN where an arm is
    empty. Newcombe's worked example, 56/70 vs 48/80: δ = 0.2000, CI 0.0524 to 0.3339.
    """
    xt, nt = np.asarray(x_treat, dtype=float), np.asarray(n_treat, dtype=float)
    xc, nc = np.asarray(x_ctrl, dtype=float), np.asarray(n_ctrl, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pt = np.where(nt > 0, xt / nt, np.nan)
        pc = np.where(nc > 0, xc / nc, np.nan)
    lt, ut = wilson_interval(xt, nt, alpha=alpha)
    lc, uc = wilson_interval(xc, nc, alpha=alpha)
    diff = pt - pc
    lower = diff - np.sqrt((pt - lt) ** 2 + (uc - pc) ** 2)
    upper = diff + np.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)
    return diff, lower, upper


def sample_size(
    baseline: ArrayLike,
    lift: ArrayLike,
    *,
    holdout: ArrayLike = 0.1,
    alpha: float = 0.05,
    power: float = 0.8,
) -> np.ndarray:
    """Total customers (treatment + control) needed to detect an absolute ``lift`` over a
    control rate ``baseline`` when a share ``holdout`` of them is held out.

    Fleiss' formula with allocation ratio k = n_t / n_c = (1 − h) / h:

        n_c = [z_α·sqrt(p̄q̄(1 + 1/k)) + z_β·sqrt(p_c q_c + p_t q_t / k)]² / Δ²,
        p̄ = (p_c + k·p_t) / (1 + k),   N = n_c·(1 + k) = n_c / h.

    Rounded up to whole customers. inf where the lift is 0 or leaves [0, 1], or h ∉ (0, 1).
    Check: 10% → 15% with a 50% holdout needs 686 per arm (N = 1,372).
    """
    pc = np.asarray(baseline, dtype=float)
    delta = np.asarray(lift, dtype=float)
    h = np.asarray(holdout, dtype=float)
    pt = pc + delta
    z_a, z_b = _z(alpha), float(norm.ppf(power))
    with np.errstate(divide="ignore", invalid="ignore"):
        k = (1 - h) / h
        pbar = (pc + k * pt) / (1 + k)
        root = z_a * np.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + z_b * np.sqrt(
            pc * (1 - pc) + pt * (1 - pt) / k
        )
        n_ctrl = root**2 / delta**2
        total = np.ceil(np.round(n_ctrl * (1 + k), 6))
    valid = (delta != 0) & (pt > 0) & (pt < 1) & (pc >= 0) & (pc <= 1) & (h > 0) & (h < 1)
    return np.where(valid, total, np.inf)


def minimum_detectable_lift(
    n_total: ArrayLike,
    baseline: ArrayLike,
    *,
    holdout: ArrayLike = 0.1,
    alpha: float = 0.05,
    power: float = 0.8,
) -> np.ndarray:
    """Smallest positive absolute lift a plan on ``n_total`` customers, ``holdout`` of them
    held out, detects with the given power (two-sided α) at control rate ``baseline``.

    Inverts :func:`sample_size` by bisection on Δ ∈ (0, 1 − p_c) (the required N falls as Δ
    grows over that range). NaN when even Δ = 1 − p_c is not detectable, or the inputs are
    out of range. A 10% baseline, 50% holdout and 1,372 customers detect +5.0 points.
    """
    n = np.asarray(n_total, dtype=float)
    pc = np.asarray(baseline, dtype=float)
    h = np.asarray(holdout, dtype=float)
    n, pc, h = np.broadcast_arrays(n, pc, h)
    lo = np.zeros_like(pc)
    hi = np.clip(1 - pc, 0.0, 1.0) - 1e-9
    ok = (n > 0) & (pc >= 0) & (pc < 1) & (h > 0) & (h < 1)
    ok &= sample_size(pc, hi, holdout=h, alpha=alpha, power=power) <= n
    for _ in range(50):  # interval shrinks 2^50: far below a tenth of a point
        mid = (lo + hi) / 2
        # Unrounded need, so the answer is continuous in n.
        need = _sample_size_raw(pc, mid, h, alpha, power)
        enough = need <= n
        hi = np.where(enough, mid, hi)
        lo = np.where(enough, lo, mid)
    return np.where(ok, hi, np.nan)


def _sample_size_raw(pc, delta, h, alpha, power):
    pt = pc + delta
    k = (1 - h) / h
    pbar = (pc + k * pt) / (1 + k)
    z_a, z_b = _z(alpha), float(norm.ppf(power))
    with np.errstate(divide="ignore", invalid="ignore"):
        root = z_a * np.sqrt(pbar * (1 - pbar) * (1 + 1 / k)) + z_b * np.sqrt(
            pc * (1 - pc) + pt * (1 - pt) / k
        )
        return np.where(delta > 0, root**2 / delta**2 * (1 + k), np.inf)


# --- verdict ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The plain-words reading of a lift: ``text`` for people, ``status`` for styling.

    status: ``works`` (CI above 0), ``harms`` (CI below 0), ``undecided`` or ``no_data``.
    ``more_needed``: about how many more customers (both arms, at the same holdout share)
    would detect the observed lift with 80% power; None when there is nothing to chase.
    """

    status: str
    text: str
    lift: float | None = None
    lower: float | None = None
    upper: float | None = None
    more_needed: int | None = None


def _pts(x: float) -> str:
    return f"{x * 100:+.1f}"


def _round_up_nice(n: float) -> int:
    """Round a "need ~N more" up to two significant figures: estimates, not promises."""
    if n <= 0:
        return 0
    magnitude = 10 ** max(0, math.floor(math.log10(n)) - 1)
    return int(math.ceil(n / magnitude) * magnitude)


def verdict(
    x_treat: int,
    n_treat: int,
    x_ctrl: int,
    n_ctrl: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
) -> Verdict:
    """Plain-words verdict on treatment vs control re-engagement.

    - CI entirely above 0: "lift +6.1 pts, CI +2.3 to +9.9: works".
    - CI entirely below 0: "... : control does better — the plan harms".
    - Otherwise: "not distinguishable from control yet"; when the observed lift is positive,
      add how many more customers would detect that lift (:func:`sample_size` at the observed
      control rate and the current holdout share, minus those already enrolled).
    """
    if n_treat <= 0 or n_ctrl <= 0:
        missing = "control" if n_ctrl <= 0 else "treated"
        return Verdict("no_data", f"No {missing} customers yet: nothing to compare.")
    d, lo, hi = (float(v) for v in diff_ci(x_treat, n_treat, x_ctrl, n_ctrl, alpha=alpha))
    head = f"lift {_pts(d)} pts, CI {_pts(lo)} to {_pts(hi)}"
    if lo > 0:
        return Verdict("works", f"{head}: works", d, lo, hi)
    if hi < 0:
        return Verdict("harms", f"{head}: control does better — the plan harms", d, lo, hi)
    total = n_treat + n_ctrl
    if d > 0:
        need = float(sample_size(x_ctrl / n_ctrl, d, holdout=n_ctrl / total, power=power))
        if math.isfinite(need) and need > total:
            more = _round_up_nice(need - total)
            return Verdict(
                "undecided",
                f"{head}: not distinguishable from control yet; need ~{more:,} more customers",
                d,
                lo,
                hi,
                more,
            )
    return Verdict(
        "undecided", f"{head}: not distinguishable from control yet; no lift so far", d, lo, hi
    )


# --- ROI ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Roi:
    """Return on a plan's spend, all money in the customers' revenue currency.

    - ``value_regained`` = (revenue per treated customer − revenue per control customer) over
      the window after enrollment × treated customers: the incremental revenue the control
      group says would not have come anyway. Negative when control customers spent more.
    - ``cost`` = ``coupon_cost`` (face value of coupons redeemed by treated customers) +
      ``action_cost`` (actions performed × cost per action by kind).
    - ``roi`` = (value_regained − cost) / cost; None when cost is 0 (nothing was spent).
    """

    value_regained: float
    coupon_cost: float
    action_cost: float
    cost: float
    roi: float | None


def roi(
    *,
    revenue_treat: float,
    n_treat: int,
    revenue_ctrl: float,
    n_ctrl: int,
    coupon_cost: float,
    action_cost: float,
) -> Roi:
    """ROI of a plan (see :class:`Roi` for the definitions).

    ``revenue_treat`` / ``revenue_ctrl``: total revenue of each arm's customers in the window.
    Without a control group (n_ctrl = 0) nothing can be attributed: value regained is 0.
    """
    if n_treat > 0 and n_ctrl > 0:
        value = (revenue_treat / n_treat - revenue_ctrl / n_ctrl) * n_treat
    else:
        value = 0.0
    cost = float(coupon_cost) + float(action_cost)
    ratio = (value - cost) / cost if cost > 0 else None
    return Roi(float(value), float(coupon_cost), float(action_cost), cost, ratio)


# --- best moment to act -----------------------------------------------------------------


@dataclass(frozen=True)
class BestMoment:
    """Re-engagement rate by days since the last engagement action at the first step.

    ``edges``: bucket left edges in days (bucket i covers [edges[i], edges[i] + width));
    ``counts``/``reengaged``/``rate``: per bucket (NaN rate where the bucket is too small);
    ``smoothed``: the rate after smoothing; ``fall_at``: days since last action at which the
    smoothed rate starts its steepest fall (None without enough data).
    """

    edges: np.ndarray
    width: int
    counts: np.ndarray
    reengaged: np.ndarray
    rate: np.ndarray
    smoothed: np.ndarray
    fall_at: float | None


def best_moment(
    days_since_last: ArrayLike,
    reengaged: ArrayLike,
    *,
    width: int = 7,
    max_days: int = 180,
    min_count: int = 20,
) -> BestMoment:
    """Where re-engagement starts to fall fastest as customers are reached later.

    Per-customer input: days since the last engagement action when the first step went out,
    and whether the enrollment ended re-engaged. (Use :func:`best_moment_from_buckets` when
    the counts are already aggregated, as ``results.py`` does in SQL.)
    """
    d = np.asarray(days_since_last, dtype=float)
    r = np.asarray(reengaged, dtype=bool)
    nb = math.ceil(max_days / width)
    idx = np.clip((d // width).astype(int), 0, nb - 1)
    counts = np.bincount(idx, minlength=nb)
    hits = np.bincount(idx, weights=r.astype(float), minlength=nb)
    return best_moment_from_buckets(counts, hits, width=width, min_count=min_count)


def best_moment_from_buckets(
    counts: ArrayLike, reengaged: ArrayLike, *, width: int = 7, min_count: int = 20
) -> BestMoment:
    """The best-moment analysis on bucketed counts (bucket i = days [i·width, (i+1)·width)).

    1. rate_i = reengaged_i / counts_i, buckets with fewer than ``min_count`` enrollments
       are left out (too noisy to steer by).
    2. Smooth with a count-weighted moving average over each bucket and its kept neighbours
       (window 3): Σ x_j / Σ n_j over j ∈ {i−1, i, i+1}, so a small bucket does not swing it.
    3. Discrete derivative between consecutive kept buckets, per day:
       s_i = (smoothed_{i+1} − smoothed_i) / (centre_{i+1} − centre_i).
    4. The steepest fall is the most negative s_i; the rate *starts* to fall fastest at the
       centre of bucket i, returned as ``fall_at`` (days since last action). Acting before
       that point reaches customers while they still respond. None when fewer than three
       buckets are kept or the rate never falls.
    """
    n = np.asarray(counts, dtype=float)
    x = np.asarray(reengaged, dtype=float)
    nb = len(n)
    edges = np.arange(nb) * width
    keep = n >= min_count
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(keep, x / n, np.nan)
    kept = np.flatnonzero(keep)
    smoothed = np.full(nb, np.nan)
    if len(kept) == 0:
        return BestMoment(edges, width, n.astype(int), x.astype(int), rate, smoothed, None)
    nk, xk = n[kept], x[kept]
    # Neighbours among the kept buckets (a gap of small buckets is skipped over).
    num = xk + np.r_[0, xk[:-1]] + np.r_[xk[1:], 0]
    den = nk + np.r_[0, nk[:-1]] + np.r_[nk[1:], 0]
    smoothed[kept] = num / den
    fall_at = None
    if len(kept) >= 3:
        centres = edges[kept] + width / 2
        slope = np.diff(smoothed[kept]) / np.diff(centres)
        i = int(np.argmin(slope))
        if slope[i] < 0:
            fall_at = float(centres[i])
    return BestMoment(edges, width, n.astype(int), x.astype(int), rate, smoothed, fall_at)


def suggested_first_delay(
    fall_at: float | None, days_since_last_at_enrollment: float
) -> int | None:
    """Days after enrollment for the first step so that it lands before ``fall_at``.

    Customers enter a plan already some days after their last action (the median of that is
    ``days_since_last_at_enrollment``); the first step should go out when they reach
    ``fall_at``: delay = max(0, floor(fall_at − median days at enrollment)).
    """
    if fall_at is None or not math.isfinite(days_since_last_at_enrollment):
        return None
    return max(0, math.floor(fall_at - days_since_last_at_enrollment))

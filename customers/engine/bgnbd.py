"""Probability that a customer is still engaged: the modified BG/NBD (MBG/NBD) model.

In plain words: while a customer is engaged they act at their own steady pace, and every time
they act (the very first time included) there is a small chance that they quietly walk away for
good. From how often and how recently each customer acted, the model works out how likely it is
that they are still engaged today, judging a customer who usually acts once a month differently
from one who acts every day.

The math
--------
Per customer we observe ``x`` (repeat engagement actions, i.e. actions after the first), ``t_x``
(time of the last action, measured from the first one; ``t_x = 0`` when ``x = 0``) and ``T``
(age: time from the first action to the as-of date). Time is in days. Assumptions of the
MBG/NBD (Batislam, Denizel & Filiztekin 2007):

1. While engaged, a customer's actions form a Poisson process with rate ``λ``.
2. ``λ`` varies across customers as a gamma distribution with shape ``r`` and rate ``α``.
3. Right after the first action and right after each repeat action the customer drops out for
   good with probability ``p``.
4. ``p`` varies across customers as a beta distribution ``Beta(a, b)``, independent of ``λ``.

Integrating ``λ`` and ``p`` out of the individual likelihood
``(1-p)^x λ^x [(1-p) e^{-λT} + p e^{-λ t_x}]`` gives

    L(r, α, a, b | x, t_x, T) = Γ(r+x) α^r / Γ(r)
        · [ B(a, b+x+1)/B(a, b) · (α+T)^{-(r+x)} + B(a+1, b+x)/B(a, b) · (α+t_x)^{-(r+x)} ]

and, using ``B(a+1, b+x) / B(a, b+x+1) = a / (b+x)``, the numerically stable log form

    ℓ = lnΓ(r+x) − lnΓ(r) + r ln α − (r+x) ln(α+T) + ln B(a, b+x+1) − ln B(a, b) + ln(1 + e^D),
    D = ln a − ln(b+x) + (r+x) ln((α+T) / (α+t_x)).

``D`` is the log-odds "dropped out after the last action" vs "still engaged", hence

    P(alive | x, t_x, T) = 1 / (1 + e^D) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^{r+x})

and the expected number of repeat actions of a new customer in ``(0, t]`` is

    E[X(t)] = b/(a−1) · [1 − (α/(α+t))^r · ₂F₁(r, b+1; a+b; t/(α+t))].

References: E. K. Batislam, M. Denizel, A. Filiztekin (2007), "Empirical validation and
comparison of models for customer base analysis", International Journal of Research in
Marketing 24(3), 201-209; P. S. Fader, B. G. S. Hardie, K. L. Lee (2005), "'Counting your
customers' the easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2),
275-284.

Why MBG/NBD rather than BG/NBD
------------------------------
In the plain BG/NBD of Fader, Hardie & Lee the drop-out coin is only tossed after *repeat*
actions, so a customer who acted once and never again (``x = 0``) can never have dropped out:
their P(alive) is exactly 1 forever. For lifecycle marketing, where one-time customers are the
largest group, that is plainly wrong. The MBG/NBD also tosses the coin right after the first
action, so for ``x = 0`` we get ``P(alive) = 1 / (1 + (a/b)(1 + T/α)^r)``, which falls steadily
with silence, while the rest of the model (and its cost) stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

__all__ = [
    "DEFAULT_RESOLUTION_DAYS",
    "FitResult",
    "MBGParams",
    "expected_actions",
    "fit",
    "log_likelihood",
    "p_alive",
    "simulate",
]

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

#: Times are rounded to this many days before identical customers are grouped in :func:`fit`.
#: 0.01 day is about 15 minutes: far below anything that moves the likelihood, yet coarse
#: enough that customers measured in whole days (or hours) collapse into few distinct rows.
DEFAULT_RESOLUTION_DAYS = 0.01

# The optimizer works on log-parameters; bounding them keeps every special function finite
# when a degenerate data set pushes a parameter towards 0 or infinity (e.g. nobody ever drops
# out, so b -> infinity). exp(±16) spans about 1e-7 .. 9e6, far beyond realistic values in days.
_LOG_BOUND = 16.0

# Largest per-customer gradient (of the log-likelihood w.r.t. log-parameters) that still
# counts as an optimum when the optimizer stops for another reason than its own tolerances.
_GRADIENT_OK = 1e-5

# Beyond 2**53 integer-valued floats are no longer exact, so grouping codes must stay below it.
_MAX_EXACT_INT = float(2**53)


@dataclass(frozen=True)
class MBGParams:
    """Population parameters of the MBG/NBD model (time unit: days).

    ``r`` and ``alpha`` are the shape and rate of the gamma distribution of action rates
    (mean rate ``r / alpha`` actions per day); ``a`` and ``b`` are the beta distribution of the
    drop-out probability (mean ``a / (a + b)``).
    """

    r: float
    alpha: float
    a: float
    b: float

    def as_array(self) -> FloatArray:
        """The parameters as ``np.array([r, alpha, a, b])``."""
        return np.array([self.r, self.alpha, self.a, self.b], dtype=np.float64)


@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit`."""

    params: MBGParams
    log_likelihood: float  # total log-likelihood at the optimum
    n_customers: int
    converged: bool
    iterations: int
    message: str


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _check_params(params: MBGParams) -> tuple[float, float, float, float]:
    """Return the parameters as floats, raising ValueError unless all are finite and > 0."""
    values = (float(params.r), float(params.alpha), float(params.a), float(params.b))
    for name, value in zip(("r", "alpha", "a", "b"), values, strict=True):
        if not (np.isfinite(value) and value > 0.0):
            raise ValueError(f"MBG/NBD parameter {name} must be finite and > 0, got {value!r}")
    return values


def _validate_customers(
    x: ArrayLike, t_x: ArrayLike, T: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Broadcast (x, t_x, T) to float arrays and check they describe real customers."""
    try:
        xa, ta, Ta = np.broadcast_arrays(
            np.asarray(x, dtype=np.float64),
            np.asarray(t_x, dtype=np.float64),
            np.asarray(T, dtype=np.float64),
        )
    except ValueError as exc:
        raise ValueError(f"x, t_x and T must have broadcastable shapes: {exc}") from None
    if xa.size == 0:
        raise ValueError("no customers given: x, t_x and T are empty")
    for name, arr in (("x", xa), ("t_x", ta), ("T", Ta)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
        if np.any(arr < 0):
            raise ValueError(f"{name} contains negative values")
    if np.any(xa != np.floor(xa)):
        raise ValueError("x (number of repeat actions) must hold whole numbers")
    if np.any(ta > Ta):
        raise ValueError("t_x (time of last action) must not exceed T (customer age)")
    if np.any((xa == 0) & (ta != 0)):
        # With no repeat action the last action *is* the first one, so t_x must be 0; anything
        # else signals that the caller mixed up the time origin.
        raise ValueError("t_x must be 0 for customers with x == 0 (no repeat action)")
    return xa, ta, Ta


# ---------------------------------------------------------------------------------------------
# Likelihood and P(alive)
# ---------------------------------------------------------------------------------------------


def _log_odds_dropped(
    r: float, alpha: float, a: float, b: float, x: FloatArray, t_x: FloatArray, T: FloatArray
) -> FloatArray:
    """D = ln a − ln(b+x) + (r+x)·ln((α+T)/(α+t_x)): log-odds of "dropped out" vs "alive"."""
    # log1p of the relative difference keeps full precision when T is close to t_x (recent
    # customers), where log(α+T) − log(α+t_x) would cancel catastrophically.
    log_ratio = np.log1p((T - t_x) / (alpha + t_x))
    return np.log(a) - np.log(b + x) + (r + x) * log_ratio


def log_likelihood(
    params: MBGParams,
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    weights: ArrayLike | None = None,
) -> FloatArray:
    """Per-customer MBG/NBD log-likelihood ``ℓ(r, α, a, b | x, t_x, T)``.

    Formula (Batislam, Denizel & Filiztekin 2007; see the module docstring):
    ``ℓ = lnΓ(r+x) − lnΓ(r) + r ln α − (r+x) ln(α+T) + ln B(a, b+x+1) − ln B(a, b)
    + ln(1 + e^D)``. When ``weights`` is given each row's value is multiplied by its weight
    (the number of identical customers it stands for), so ``.sum()`` is the total
    log-likelihood. The result has the broadcast shape of the inputs.

    Raises ValueError for invalid parameters or customer data.
    """
    r, alpha, a, b = _check_params(params)
    xa, ta, Ta = _validate_customers(x, t_x, T)
    d = _log_odds_dropped(r, alpha, a, b, xa, ta, Ta)
    ll = (
        special.gammaln(r + xa)
        - special.gammaln(r)
        + r * np.log(alpha)
        - (r + xa) * np.log(alpha + Ta)
        + special.betaln(a, b + xa + 1.0)
        - special.betaln(a, b)
        + np.logaddexp(0.0, d)
    )
    if weights is None:
        return ll
    w = np.asarray(weights, dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    try:
        return ll * w
    except ValueError as exc:
        raise ValueError(f"weights do not match the shape of the customers: {exc}") from None


def p_alive(params: MBGParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """Probability that each customer is still engaged at age ``T``.

    MBG/NBD closed form (Batislam, Denizel & Filiztekin 2007, eq. for P(τ > T)):
    ``P(alive | x, t_x, T) = 1 / (1 + a/(b+x) · ((α+T)/(α+t_x))^(r+x))``, evaluated as
    ``expit(−D)`` on the log scale so it stays within [0, 1] without overflow. Unlike the plain
    BG/NBD this is below 1 for ``x = 0`` and keeps falling the longer the customer is silent.
    Inputs broadcast; raises ValueError for invalid parameters or customer data.
    """
    r, alpha, a, b = _check_params(params)
    xa, ta, Ta = _validate_customers(x, t_x, T)
    return special.expit(-_log_odds_dropped(r, alpha, a, b, xa, ta, Ta))


def expected_actions(params: MBGParams, t: float | ArrayLike) -> FloatArray:
    """Expected number of repeat actions ``E[X(t)]`` of a new customer in ``(0, t]`` days.

    Closed form (Batislam, Denizel & Filiztekin 2007):
    ``E[X(t)] = b/(a−1) · [1 − (α/(α+t))^r · ₂F₁(r, b+1; a+b; t/(α+t))]``.

    It is derived for ``a > 1`` from ``E[(1−p)/p · (1 − (α/(α+pt))^r)]`` but both sides are
    analytic in ``a``, so it holds for every ``a > 0``. At ``a = 1`` the expression is 0/0
    (removable), so within δ of 1 we interpolate linearly between ``a = 1 ± δ`` (error O(δ²)).
    """
    r, alpha, a, b = _check_params(params)
    ta = np.asarray(t, dtype=np.float64)
    if not np.all(np.isfinite(ta)) or np.any(ta < 0):
        raise ValueError("t must be finite and >= 0")

    def closed_form(a_: float) -> FloatArray:
        z = ta / (alpha + ta)
        # (α/(α+t))^r written as (1 − z)^r keeps it in (0, 1] for any t.
        hyp = special.hyp2f1(r, b + 1.0, a_ + b, z)
        # "+ 0.0" turns the -0.0 produced at t = 0 into a plain 0.0.
        return b / (a_ - 1.0) * (1.0 - np.exp(r * np.log1p(-z)) * hyp) + 0.0

    # δ balances the O(δ²) interpolation error against cancellation in 1 − ₂F₁ (~1e-16/δ).
    delta = 1e-5
    if abs(a - 1.0) < delta:
        lower, upper = closed_form(1.0 - delta), closed_form(1.0 + delta)
        result = lower + (a - (1.0 - delta)) / (2.0 * delta) * (upper - lower)
    else:
        result = closed_form(a)
    return np.asarray(result, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Grouped:
    """Distinct (x, t_x, T) rows with how many customers each stands for."""

    x: FloatArray
    t_x: FloatArray
    T: FloatArray
    T_minus_t: FloatArray  # precomputed once; used in every likelihood evaluation
    weight: FloatArray
    x_index: npt.NDArray[np.intp]  # row -> position in x_values
    x_values: FloatArray  # distinct x values
    x_weight: FloatArray  # customers per distinct x
    n: float  # total number of customers


def _group(x: FloatArray, t_x: FloatArray, T: FloatArray, resolution: float) -> _Grouped:
    """Collapse customers into distinct rounded (x, t_x, T) rows with counts.

    Steps:
    1. Round t_x and T to multiples of ``resolution`` days (rounding is monotone, so t_x <= T
       still holds), giving integer grid codes.
    2. Pack (x, t_x code, T code) into one int64 key by mixed radix when it fits, so a single
       1-D ``np.unique`` (a plain sort) finds the distinct rows; otherwise fall back to a
       three-key ``np.lexsort``.
    3. Group the distinct rows once more by x, because the expensive gamma/beta terms depend on
       x alone and are then evaluated once per distinct x instead of once per row.
    """
    if resolution > 0:
        kt = np.rint(t_x / resolution)
        kT = np.rint(T / resolution)
        scale = resolution
    else:
        kt, kT, scale = t_x, T, 1.0
    base, fits = 0, False
    if resolution > 0 and max(float(kT.max()), float(x.max())) < _MAX_EXACT_INT:
        # Python integers do not overflow, so this tells whether the packed key fits in int64.
        base = int(kT.max()) + 1
        fits = (int(x.max()) + 1) * base * base < 2**63
    if fits:
        key = (x.astype(np.int64) * base + kt.astype(np.int64)) * base + kT.astype(np.int64)
        uniq, counts = np.unique(key, return_counts=True)
        ux = (uniq // (base * base)).astype(np.float64)
        ut = ((uniq // base) % base).astype(np.float64) * scale
        uT = (uniq % base).astype(np.float64) * scale
    else:
        # lexsort + boundary detection: the same result as np.unique(axis=0) on the stacked
        # rows, several times faster because it avoids the row-wise void-dtype comparison.
        order = np.lexsort((kT, kt, x))
        sx, st, sT = x[order], kt[order], kT[order]
        starts = np.flatnonzero(
            np.concatenate(
                ([True], (sx[1:] != sx[:-1]) | (st[1:] != st[:-1]) | (sT[1:] != sT[:-1]))
            )
        )
        counts = np.diff(np.append(starts, x.size))
        ux, ut, uT = sx[starts], st[starts] * scale, sT[starts] * scale
    x_values, x_index = np.unique(ux, return_inverse=True)
    weight = counts.astype(np.float64)
    x_weight = np.bincount(x_index, weights=weight, minlength=x_values.size)
    return _Grouped(
        x=ux,
        t_x=ut,
        T=uT,
        T_minus_t=uT - ut,
        weight=weight,
        x_index=x_index.ravel(),
        x_values=x_values,
        x_weight=x_weight,
        n=float(weight.sum()),
    )


def _total_ll_and_grad(params: FloatArray, g: _Grouped) -> tuple[float, FloatArray]:
    """Total log-likelihood and its gradient w.r.t. (r, α, a, b) on grouped data.

    With ``s = e^D / (1 + e^D)`` (probability of having dropped out) and ``q = 1 − s``
    (= P(alive)), differentiating the log form in the module docstring gives per customer

    - ∂ℓ/∂r = ψ(r+x) − ψ(r) + ln α − ln(α+T) + s · ln((α+T)/(α+t_x))
    - ∂ℓ/∂α = r/α − (r+x) · (q/(α+T) + s/(α+t_x))
    - ∂ℓ/∂a = ψ(a+b) − ψ(a+b+x+1) + s/a
    - ∂ℓ/∂b = ψ(b+x+1) − ψ(a+b+x+1) − ψ(b) + ψ(a+b) − s/(b+x)

    Terms that depend on x alone are summed per distinct x (few values) rather than per row.
    """
    r, alpha, a, b = (float(v) for v in params)
    u, wu, n = g.x_values, g.x_weight, g.n

    # Terms depending on x only: one evaluation per distinct x.
    per_x_ll = (
        special.gammaln(r + u)
        - special.gammaln(r)
        + special.betaln(a, b + u + 1.0)
        - special.betaln(a, b)
    )
    log_b_x = np.log(b + u)
    total = float(wu @ per_x_ll) + n * r * np.log(alpha)

    # Row terms.
    rx = r + g.x
    alpha_T = alpha + g.T
    alpha_t = alpha + g.t_x
    log_alpha_T = np.log(alpha_T)
    log_ratio = np.log1p(g.T_minus_t / alpha_t)
    d = np.log(a) - log_b_x[g.x_index] + rx * log_ratio
    w = g.weight
    total += float(w @ (np.logaddexp(0.0, d) - rx * log_alpha_T))

    s = special.expit(d)
    q = 1.0 - s
    ws = w * s
    grad_r = (
        float(wu @ (special.digamma(r + u) - special.digamma(r)))
        + n * np.log(alpha)
        + float(ws @ log_ratio)
        - float(w @ log_alpha_T)
    )
    grad_alpha = n * r / alpha - float(w @ (rx * (q / alpha_T + s / alpha_t)))
    s_by_x = np.bincount(g.x_index, weights=ws, minlength=u.size)
    psi_abx1 = special.digamma(a + b + u + 1.0)
    grad_a = float(wu @ (special.digamma(a + b) - psi_abx1)) + float(ws.sum()) / a
    grad_b = float(
        wu @ (special.digamma(b + u + 1.0) - psi_abx1 - special.digamma(b) + special.digamma(a + b))
    ) - float(s_by_x @ (1.0 / (b + u)))
    return total, np.array([grad_r, grad_alpha, grad_a, grad_b])


def _default_initial(g: _Grouped) -> MBGParams:
    """A data-driven starting point: r = 1 and α matching the observed action rate."""
    # With r = 1 the mean rate is 1/α; ignoring drop-out, rate ≈ Σx / ΣT. The guess only has to
    # put α on the right time scale (days vs. years of data), the optimizer does the rest.
    total_x = float(g.weight @ g.x)
    total_T = float(g.weight @ g.T)
    # max(.., n): when everybody was first seen today (ΣT = 0) fall back to a 1-day scale.
    alpha = max(total_T, g.n) / max(total_x, 1.0)
    alpha = float(np.clip(alpha, np.exp(-_LOG_BOUND + 1), np.exp(_LOG_BOUND - 1)))
    return MBGParams(r=1.0, alpha=alpha, a=1.0, b=1.0)


def fit(
    x: ArrayLike,
    t_x: ArrayLike,
    T: ArrayLike,
    *,
    initial: MBGParams | None = None,
    max_iter: int = 500,
    resolution: float = DEFAULT_RESOLUTION_DAYS,
) -> FitResult:
    """Fit MBG/NBD parameters to customers by maximum likelihood.

    Algorithm (likelihood of Batislam, Denizel & Filiztekin 2007; see module docstring):

    1. Validate the data (ValueError on NaN, negatives, t_x > T, non-integer x, empty input).
    2. Round t_x and T to ``resolution`` days (default 0.01 day ≈ 15 min; 0 disables rounding)
       and group identical (x, t_x, T) rows with counts, so the likelihood is a weighted sum
       over distinct rows. Data measured in whole days shrinks by orders of magnitude.
    3. Minimise ``−(1/N) Σ wᵢ ℓᵢ`` over log-parameters with L-BFGS-B and the analytic gradient.
       Log-parameters keep r, α, a, b positive without constraints; dividing by N makes the
       optimizer's tolerances independent of the number of customers.
    4. Report the parameters, the total log-likelihood on the (rounded) data and whether the
       optimizer converged. A parameter ending at its bound (e^±16) means the data do not pin it
       down (for example nobody ever drops out); the message says so.

    Memory is a small multiple of the input size (a few arrays of the distinct rows); the loop
    over customers is entirely inside numpy.
    """
    if max_iter < 1:
        raise ValueError("max_iter must be >= 1")
    if not (np.isfinite(resolution) and resolution >= 0):
        raise ValueError("resolution must be finite and >= 0")
    xa, ta, Ta = _validate_customers(x, t_x, T)
    g = _group(xa.ravel(), ta.ravel(), Ta.ravel(), float(resolution))
    del xa, ta, Ta

    start = initial if initial is not None else _default_initial(g)
    _check_params(start)
    theta0 = np.clip(np.log(start.as_array()), -_LOG_BOUND, _LOG_BOUND)
    n = g.n

    def objective(theta: FloatArray) -> tuple[float, FloatArray]:
        params = np.exp(theta)
        total, grad = _total_ll_and_grad(params, g)
        # Chain rule for log-parameters: ∂ℓ/∂lnθ = θ · ∂ℓ/∂θ.
        return -total / n, -(grad * params) / n

    res = optimize.minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
        options={"maxiter": int(max_iter), "ftol": 1e-12, "gtol": 1e-8},
    )
    r, alpha, a, b = (float(v) for v in np.exp(res.x))
    message = str(res.message)
    converged = bool(res.success)
    if not converged and res.nit < max_iter:
        # L-BFGS-B sometimes gives up in the line search when rounding noise in the objective
        # exceeds the remaining improvement. If the projected gradient (components pushing
        # against a bound do not count) is tiny, that is an optimum all the same.
        grad = np.asarray(res.jac, dtype=np.float64)
        blocked = ((res.x <= -_LOG_BOUND) & (grad > 0)) | ((res.x >= _LOG_BOUND) & (grad < 0))
        if float(np.max(np.abs(np.where(blocked, 0.0, grad)))) < _GRADIENT_OK:
            converged = True
            message += "; projected gradient below 1e-5, accepted as converged"
    at_bound = [
        name
        for name, value in zip(("r", "alpha", "a", "b"), res.x, strict=True)
        if abs(abs(float(value)) - _LOG_BOUND) < 1e-6
    ]
    if at_bound:
        message += f"; parameter(s) {', '.join(at_bound)} at their bound (not identified by data)"
    return FitResult(
        params=MBGParams(r=r, alpha=alpha, a=a, b=b),
        log_likelihood=float(-res.fun * n),
        n_customers=round(n),
        converged=converged,
        iterations=int(res.nit),
        message=message,
    )


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------


def _simulate_with_alive(
    params: MBGParams, n: int, T: float | ArrayLike, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Simulate like :func:`simulate` and also return whether each customer is alive at T."""
    r, alpha, a, b = _check_params(params)
    if n < 0:
        raise ValueError("n must be >= 0")
    Ta = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    if not np.all(np.isfinite(Ta)) or np.any(Ta < 0):
        raise ValueError("T must be finite and >= 0")

    # 1. Draw each customer's action rate and drop-out probability.
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    # 2. Number of drop-out coins survived (time-0 coin included) before dropping out, i.e. the
    #    lifetime number of repeat actions: geometric on {0, 1, ...} with P(G >= k) = (1-p)^k.
    #    Inverse-CDF on floats avoids int overflow when p is tiny (G may be astronomically big).
    u = 1.0 - rng.random(n)  # in (0, 1], so log(u) is finite
    with np.errstate(divide="ignore", invalid="ignore"):
        # "+ 0.0" turns the -0.0 that floor(0 / negative) yields into a plain 0.0.
        lifetime_actions = np.floor(np.log(u) / np.log1p(-p)) + 0.0
    lifetime_actions = np.where(p <= 0.0, np.inf, np.where(p >= 1.0, 0.0, lifetime_actions))
    # 3. Actions the Poisson process would produce in (0, T] if the customer never left.
    m = rng.poisson(lam * Ta).astype(np.float64)
    # 4. Observed repeat actions stop at whichever comes first.
    x = np.minimum(m, lifetime_actions)
    alive = lifetime_actions > m
    # 5. Given m Poisson arrivals in (0, T] (i.i.d. uniform), the x-th arrival is the x-th order
    #    statistic of m uniforms: T · Beta(x, m − x + 1). For x = m that is T · max of m uniforms.
    has_repeat = x >= 1
    shape_1 = np.where(has_repeat, x, 1.0)
    shape_2 = np.where(has_repeat, m - x + 1.0, 1.0)
    t_x = np.where(has_repeat, Ta * rng.beta(shape_1, shape_2), 0.0)
    return x, t_x, Ta, alive


def simulate(
    params: MBGParams, n: int, T: float | ArrayLike, *, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Draw ``n`` customers ``(x, t_x, T)`` from the MBG/NBD generative process.

    Steps (assumptions 1-4 of Batislam, Denizel & Filiztekin 2007, module docstring):

    1. λ ~ Gamma(r, rate α) and p ~ Beta(a, b) per customer.
    2. Lifetime number of repeat actions G: each action, the first included, is followed by a
       drop-out coin with probability p, so P(G >= k) = (1−p)^k.
    3. M ~ Poisson(λT) actions would happen in (0, T] without drop-out.
    4. x = min(M, G); t_x is the x-th of M uniform arrival times on (0, T] (0 if x = 0).

    ``T`` is a scalar or one age per customer. Vectorized: no Python loop over customers.
    """
    x, t_x, Ta, _alive = _simulate_with_alive(params, n, T, rng)
    return x, t_x, Ta

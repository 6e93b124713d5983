"""Tests for the MBG/NBD engine (customers/engine/bgnbd.py); pure numpy, no Django."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special

from customers.engine import bgnbd
from customers.engine.bgnbd import MBGParams

TRUE = MBGParams(r=0.25, alpha=4.0, a=0.8, b=2.5)


@pytest.fixture(scope="module")
def simulated() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """50,000 customers from TRUE, ages uniform over 30..540 days, fixed seed."""
    rng = np.random.default_rng(20240611)
    n = 50_000
    ages = rng.uniform(30.0, 540.0, n)
    return bgnbd.simulate(TRUE, n, ages, rng=rng)


# ---------------------------------------------------------------------------------------------
# Fitting
# ---------------------------------------------------------------------------------------------


def test_fit_recovers_known_parameters(simulated: tuple[np.ndarray, ...]) -> None:
    # Over 60 seeds at n = 20,000 the relative standard deviations of the estimates were about
    # r 2.6%, alpha 2.7%, a 3.6%, b 7.3%; at n = 50,000 they shrink by ~1/1.6. The tolerances
    # below are therefore >= 4 standard deviations: a failure means a bug, not bad luck.
    tolerances = {"r": 0.15, "alpha": 0.15, "a": 0.15, "b": 0.20}
    x, t_x, T = simulated
    result = bgnbd.fit(x, t_x, T)
    assert result.converged, result.message
    assert result.n_customers == x.size
    assert result.iterations >= 1
    for name, tol in tolerances.items():
        got, want = getattr(result.params, name), getattr(TRUE, name)
        assert abs(got / want - 1.0) < tol, f"{name}: fitted {got:.4f}, true {want}"


def test_fit_likelihood_is_maximal_and_consistent(simulated: tuple[np.ndarray, ...]) -> None:
    x, t_x, T = simulated
    result = bgnbd.fit(x, t_x, T)
    # The fit works on times rounded to 0.01 day; its reported LL must be that data's LL.
    t_r, T_r = np.round(t_x, 2), np.round(T, 2)
    at_fit = bgnbd.log_likelihood(result.params, x, t_r, T_r).sum()
    assert result.log_likelihood == pytest.approx(at_fit, rel=1e-9)
    # The maximum must beat the true parameters and any nudged version of the optimum.
    assert at_fit >= bgnbd.log_likelihood(TRUE, x, t_r, T_r).sum()
    base = result.params.as_array()
    for i in range(4):
        for factor in (0.97, 1.03):
            nudged = base.copy()
            nudged[i] *= factor
            assert at_fit > bgnbd.log_likelihood(MBGParams(*nudged), x, t_r, T_r).sum()


def test_fit_is_insensitive_to_start_and_rounding(simulated: tuple[np.ndarray, ...]) -> None:
    x, t_x, T = simulated
    default = bgnbd.fit(x, t_x, T).params.as_array()
    other_start = bgnbd.fit(x, t_x, T, initial=MBGParams(3.0, 50.0, 5.0, 0.5)).params.as_array()
    unrounded = bgnbd.fit(x, t_x, T, resolution=0.0).params.as_array()
    np.testing.assert_allclose(other_start, default, rtol=1e-3)
    np.testing.assert_allclose(unrounded, default, rtol=1e-3)


def test_fit_scales_with_time_unit(simulated: tuple[np.ndarray, ...]) -> None:
    # Measuring time in weeks instead of days only rescales alpha (the rate parameter).
    x, t_x, T = simulated
    days = bgnbd.fit(x, t_x, T).params
    weeks = bgnbd.fit(x, t_x / 7.0, T / 7.0, resolution=0.0).params
    assert weeks.alpha == pytest.approx(days.alpha / 7.0, rel=5e-3)
    assert weeks.r == pytest.approx(days.r, rel=5e-3)


def test_grouping_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    x, t_x, T = bgnbd.simulate(TRUE, 3_000, rng.integers(30, 90, 3_000).astype(float), rng=rng)
    t_x = np.round(t_x)  # whole days, so many customers share a row
    fast = bgnbd._group(x, t_x, T, 0.01)
    assert fast.x.size < x.size / 2
    assert fast.weight.sum() == x.size
    # Pretend the packed int64 key would overflow, forcing the row-wise np.unique fallback.
    monkeypatch.setattr(bgnbd, "_MAX_EXACT_INT", 0.0)
    slow = bgnbd._group(x, t_x, T, 0.01)
    for field in ("x", "t_x", "T", "weight", "x_values", "x_weight"):
        np.testing.assert_allclose(getattr(slow, field), getattr(fast, field))


@pytest.mark.parametrize(
    "point",
    [(0.25, 4.0, 0.8, 2.5), (1.3, 0.5, 3.0, 0.7), (0.05, 40.0, 0.2, 9.0)],
)
def test_analytic_gradient_matches_finite_differences(point: tuple[float, ...]) -> None:
    rng = np.random.default_rng(1)
    x, t_x, T = bgnbd.simulate(TRUE, 500, rng.uniform(30, 540, 500), rng=rng)
    grouped = bgnbd._group(x, t_x, T, 0.01)
    params = np.array(point)
    analytic = bgnbd._total_ll_and_grad(params, grouped)[1]
    numeric = optimize.approx_fprime(
        params, lambda p: bgnbd._total_ll_and_grad(p, grouped)[0], 1e-7 * params
    )
    np.testing.assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# The model itself: likelihood, P(alive), E[X(t)], simulation
# ---------------------------------------------------------------------------------------------


def test_likelihood_is_a_probability_distribution() -> None:
    # The likelihood is the density of a whole action history. Collapsing the x − 1 earlier
    # action times into (x, t_x) multiplies it by t_x^(x−1)/(x−1)!, after which summing over
    # x and integrating over t_x in [0, T] must give exactly 1 — a check of the formula that is
    # independent of how it was derived.
    params, T = MBGParams(r=0.7, alpha=5.0, a=0.8, b=2.5), 20.0
    total = float(np.exp(bgnbd.log_likelihood(params, 0, 0.0, T)))
    for x in range(1, 300):

        def density(t: float, x: int = x) -> float:
            if t == 0.0:
                return float(np.exp(bgnbd.log_likelihood(params, 1, 0.0, T))) if x == 1 else 0.0
            log_f = bgnbd.log_likelihood(params, x, t, T)
            return float(np.exp(log_f + (x - 1) * np.log(t) - special.gammaln(x)))

        total += integrate.quad(density, 0.0, T, epsabs=1e-14, epsrel=1e-10, limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-7)


def test_log_likelihood_weights_multiply_rows() -> None:
    x, t_x, T = np.array([0, 3, 7]), np.array([0.0, 10.0, 30.0]), np.array([40.0, 40.0, 40.0])
    plain = bgnbd.log_likelihood(TRUE, x, t_x, T)
    weighted = bgnbd.log_likelihood(TRUE, x, t_x, T, weights=[2, 0, 5])
    np.testing.assert_allclose(weighted, plain * [2, 0, 5])
    assert np.all(np.isfinite(plain)) and np.all(plain < 0)


@pytest.mark.parametrize(
    ("params", "x", "t_x", "T", "expected"),
    [
        # r=1, α=4, a=1, b=3, x=0, T=12: 1 / (1 + (1/3)·((4+12)/4)^1) = 1 / (1 + 4/3) = 3/7.
        ((1.0, 4.0, 1.0, 3.0), 0, 0.0, 12.0, 3 / 7),
        # Same params, x=2, t_x=4, T=12: a/(b+x) = 1/5, ((4+12)/(4+4))^(1+2) = 2^3 = 8,
        # so 1 / (1 + 8/5) = 5/13.
        ((1.0, 4.0, 1.0, 3.0), 2, 4.0, 12.0, 5 / 13),
        # x=0 right after the first action (T=0): 1 / (1 + 1/3) = 3/4 — under MBG/NBD the
        # customer may drop out right after the first action (chance a/(a+b) = 1/4).
        ((1.0, 4.0, 1.0, 3.0), 0, 0.0, 0.0, 3 / 4),
        # r=0.5, α=5, a=2, b=6, x=0, T=15: ((5+15)/5)^0.5 = 2, a/b = 1/3,
        # so 1 / (1 + 2/3) = 3/5.
        ((0.5, 5.0, 2.0, 6.0), 0, 0.0, 15.0, 3 / 5),
        # Same params, x=1 acted just now (t_x = T = 15): ratio 1, a/(b+x) = 2/7 → 7/9.
        ((0.5, 5.0, 2.0, 6.0), 1, 15.0, 15.0, 7 / 9),
    ],
)
def test_p_alive_hand_checked(
    params: tuple[float, ...], x: int, t_x: float, T: float, expected: float
) -> None:
    assert float(bgnbd.p_alive(MBGParams(*params), x, t_x, T)) == pytest.approx(expected, 1e-12)


def test_p_alive_one_timer_below_one_unlike_bgnbd() -> None:
    # Plain BG/NBD would return exactly 1.0 for every x = 0 customer.
    reasonable = MBGParams(r=0.5, alpha=10.0, a=0.8, b=2.5)  # one action per ~20 days
    ages = np.array([0.0, 30.0, 365.0, 3650.0])
    p = bgnbd.p_alive(reasonable, np.zeros(4), np.zeros(4), ages)
    assert np.all(p < 1.0)
    # 1 / (1 + 0.32·sqrt(37.5)) = 0.338 for a one-timer silent for a year.
    assert p[2] == pytest.approx(1 / (1 + 0.32 * math.sqrt(37.5)))
    assert p[2] < 0.5
    assert p[3] < 0.2


def test_p_alive_frequent_recent_customer_close_to_one() -> None:
    reasonable = MBGParams(r=0.5, alpha=10.0, a=0.8, b=2.5)
    assert float(bgnbd.p_alive(reasonable, 50, 364.0, 365.0)) > 0.95
    # The same customer silent for half a year has almost surely dropped out.
    assert float(bgnbd.p_alive(reasonable, 50, 182.0, 365.0)) < 0.01


@pytest.mark.parametrize("x", [0, 1, 5, 20])
def test_p_alive_decreases_with_silence(x: int) -> None:
    t_x = 0.0 if x == 0 else 25.0
    ages = np.linspace(t_x, 2000.0, 400)
    p = bgnbd.p_alive(TRUE, np.full(ages.size, x), np.full(ages.size, t_x), ages)
    assert np.all(np.diff(p) < 0)
    # ...and, for the same age, a more recent last action means more likely alive.
    if x > 0:
        recency = bgnbd.p_alive(TRUE, x, np.linspace(1.0, 100.0, 50), 100.0)
        assert np.all(np.diff(recency) > 0)


@settings(max_examples=300, deadline=None)
@given(
    r=st.floats(1e-3, 1e3),
    alpha=st.floats(1e-3, 1e4),
    a=st.floats(1e-3, 1e3),
    b=st.floats(1e-3, 1e3),
    x=st.integers(0, 100_000),
    T=st.floats(0.0, 1e5),
    frac=st.floats(0.0, 1.0),
)
def test_p_alive_always_a_probability(
    r: float, alpha: float, a: float, b: float, x: int, T: float, frac: float
) -> None:
    params = MBGParams(r=r, alpha=alpha, a=a, b=b)
    t_x = 0.0 if x == 0 else frac * T
    p = bgnbd.p_alive(params, x, t_x, T)
    assert np.isfinite(p) and 0.0 <= float(p) <= 1.0
    assert np.isfinite(bgnbd.log_likelihood(params, x, t_x, T))


def test_simulated_alive_share_matches_p_alive() -> None:
    # Calibration: among simulated customers, the share truly alive at T must equal the mean
    # predicted P(alive), overall and for the one-timers (x = 0) alone.
    rng = np.random.default_rng(3)
    n = 200_000
    for age in (10.0, 365.0):
        x, t_x, T, alive = bgnbd._simulate_with_alive(TRUE, n, age, rng)
        p = bgnbd.p_alive(TRUE, x, t_x, T)
        assert alive.mean() == pytest.approx(p.mean(), abs=0.005)
        assert alive[x == 0].mean() == pytest.approx(p[x == 0].mean(), abs=0.01)


def test_expected_actions_matches_integral_and_simulation() -> None:
    def by_quadrature(params: MBGParams, t: float) -> float:
        # E[X(t)] = E_p[(1−p)/p · (1 − (α/(α+pt))^r)], p ~ Beta(a, b)  (λ integrated out).
        def integrand(p: float) -> float:
            gain = -np.expm1(-params.r * np.log1p(p * t / params.alpha))
            log_beta_pdf = (
                (params.a - 1) * np.log(p)
                + (params.b - 1) * np.log1p(-p)
                - special.betaln(params.a, params.b)
            )
            return float((1 - p) / p * gain * np.exp(log_beta_pdf))

        return integrate.quad(integrand, 0.0, 1.0, limit=500, epsabs=1e-13, epsrel=1e-11)[0]

    # a < 1, a > 1 with c − a − b integer (log case of ₂F₁), and a ≈ 1 (removable 0/0).
    for params in (TRUE, MBGParams(0.25, 4.0, 1.25, 2.5), MBGParams(1.0, 10.0, 1.0, 3.0)):
        for t in (1.0, 30.0, 540.0):
            got = float(bgnbd.expected_actions(params, t))
            assert got == pytest.approx(by_quadrature(params, t), rel=1e-7)
    assert float(bgnbd.expected_actions(TRUE, 0.0)) == 0.0

    rng = np.random.default_rng(11)
    x, _, _ = bgnbd.simulate(TRUE, 400_000, 100.0, rng=rng)
    standard_error = x.std() / math.sqrt(x.size)
    assert abs(x.mean() - float(bgnbd.expected_actions(TRUE, 100.0))) < 4 * standard_error


def test_simulate_shapes_and_invariants() -> None:
    rng = np.random.default_rng(0)
    ages = rng.uniform(0.0, 100.0, 1_000)
    x, t_x, T = bgnbd.simulate(TRUE, 1_000, ages, rng=rng)
    assert x.shape == t_x.shape == T.shape == (1_000,)
    np.testing.assert_array_equal(T, ages)
    assert np.all(x == np.floor(x)) and np.all(x >= 0)
    assert np.all((t_x >= 0) & (t_x <= T))
    assert np.all(t_x[x == 0] == 0)
    # Same seed, same customers.
    x2, _, _ = bgnbd.simulate(TRUE, 50, 30.0, rng=np.random.default_rng(9))
    x3, _, _ = bgnbd.simulate(TRUE, 50, 30.0, rng=np.random.default_rng(9))
    np.testing.assert_array_equal(x2, x3)


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------

NAN = float("nan")


@pytest.mark.parametrize(
    ("x", "t_x", "T", "match"),
    [
        ([1], [5.0], [4.0], "must not exceed T"),
        ([-1], [0.0], [4.0], "negative"),
        ([1], [-1.0], [4.0], "negative"),
        ([0], [0.0], [-4.0], "negative"),
        ([NAN], [0.0], [4.0], "NaN"),
        ([1], [NAN], [4.0], "NaN"),
        ([1], [1.0], [NAN], "NaN"),
        ([1], [1.0], [float("inf")], "NaN or infinite"),
        ([1.5], [1.0], [4.0], "whole numbers"),
        ([0], [2.0], [4.0], "t_x must be 0"),
        ([], [], [], "empty"),
        ([1, 2], [1.0, 1.0, 1.0], [4.0], "broadcastable"),
    ],
)
def test_bad_customer_data_raises(x: list, t_x: list, T: list, match: str) -> None:
    for call in (
        lambda: bgnbd.fit(x, t_x, T),
        lambda: bgnbd.p_alive(TRUE, x, t_x, T),
        lambda: bgnbd.log_likelihood(TRUE, x, t_x, T),
    ):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize(
    "params",
    [
        MBGParams(0.0, 4.0, 0.8, 2.5),
        MBGParams(0.25, -4.0, 0.8, 2.5),
        MBGParams(0.25, 4.0, NAN, 2.5),
        MBGParams(0.25, 4.0, 0.8, float("inf")),
    ],
)
def test_bad_params_raise(params: MBGParams) -> None:
    with pytest.raises(ValueError, match="parameter"):
        bgnbd.p_alive(params, [1], [1.0], [2.0])
    with pytest.raises(ValueError, match="parameter"):
        bgnbd.expected_actions(params, 10.0)
    with pytest.raises(ValueError, match="parameter"):
        bgnbd.fit([1, 2], [1.0, 2.0], [3.0, 4.0], initial=params)


def test_other_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="weights"):
        bgnbd.log_likelihood(TRUE, [1], [1.0], [2.0], weights=[-1.0])
    with pytest.raises(ValueError, match="max_iter"):
        bgnbd.fit([1], [1.0], [2.0], max_iter=0)
    with pytest.raises(ValueError, match="resolution"):
        bgnbd.fit([1], [1.0], [2.0], resolution=-1.0)
    with pytest.raises(ValueError, match="t must be"):
        bgnbd.expected_actions(TRUE, -1.0)
    with pytest.raises(ValueError, match="T must be"):
        bgnbd.simulate(TRUE, 3, NAN, rng=np.random.default_rng(0))


def test_degenerate_data_still_gives_finite_answers() -> None:
    # Nobody ever repeats: the parameters are not identified, yet the fit must not blow up.
    n = 1_000
    result = bgnbd.fit(np.zeros(n), np.zeros(n), np.linspace(1.0, 300.0, n))
    values = result.params.as_array()
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert math.isfinite(result.log_likelihood)
    p = bgnbd.p_alive(result.params, np.zeros(n), np.zeros(n), np.linspace(1.0, 300.0, n))
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    # A single customer is a valid (if uninformative) data set.
    single = bgnbd.fit([3], [10.0], [20.0])
    assert np.all(np.isfinite(single.params.as_array()))

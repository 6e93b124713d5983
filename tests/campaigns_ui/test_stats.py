"""campaigns/stats.py against hand-computed and published numbers."""

import math

import numpy as np
import pytest

from campaigns import stats


def test_wilson_interval_hand_computed():
    # 8/20, z = 1.959964: centre = (0.4 + 0.096040) / 1.192073 = 0.416117,
    # half = 1.959964·sqrt(0.012 + 0.002401) / 1.192073 = 0.197302.
    lo, hi = stats.wilson_interval(8, 20)
    assert float(lo) == pytest.approx(0.2188, abs=1e-4)
    assert float(hi) == pytest.approx(0.6134, abs=1e-4)


@pytest.mark.parametrize(
    ("arms", "expected"),
    [
        # Newcombe (1998), Table II, method 10.
        ((56, 70, 48, 80), (0.2000, 0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.6000, 0.1705, 0.8090)),
        ((5, 56, 0, 29), (0.0893, -0.0381, 0.1926)),
        ((0, 10, 0, 20), (0.0, -0.1611, 0.2775)),
        ((0, 10, 0, 10), (0.0, -0.2775, 0.2775)),
        ((10, 10, 0, 20), (1.0, 0.6791, 1.0)),
        ((10, 10, 0, 10), (1.0, 0.6075, 1.0)),
    ],
)
def test_newcombe_interval_matches_published_examples(arms, expected):
    diff, lo, hi = stats.diff_ci(*arms)
    assert (float(diff), float(lo), float(hi)) == pytest.approx(expected, abs=1e-4)


def test_diff_ci_is_vectorized_and_nan_for_empty_arm():
    diff, lo, hi = stats.diff_ci([56, 3], [70, 10], [48, 0], [80, 0])
    assert diff.shape == (2,)
    assert lo[0] == pytest.approx(0.0524, abs=1e-4)
    assert math.isnan(diff[1]) and math.isnan(lo[1]) and math.isnan(hi[1])


def test_interval_stays_inside_minus_one_one_where_wald_does_not():
    # Wald at 1/3 vs 0/3 gives 0.333 ± 0.533 → upper 0.87 but lower -0.20; at 3/3 vs 0/3 Wald
    # collapses to [1, 1]. Newcombe stays proper.
    _, lo, hi = stats.diff_ci(3, 3, 0, 3)
    assert 0 < float(lo) < 1 and float(hi) == 1.0


def test_sample_size_ten_to_fifteen_percent_is_686_per_arm():
    # Fleiss without continuity correction, 50/50: 686 per arm (the textbook figure).
    assert float(stats.sample_size(0.10, 0.05, holdout=0.5)) == 1372


def test_sample_size_unequal_allocation_hand_computed():
    # p_c = 0.10, p_t = 0.15, h = 0.1 → k = 9, p̄ = 0.145,
    # n_c = [1.959964·sqrt(0.145·0.855·10/9) + 0.841621·sqrt(0.09 + 0.1275/9)]² / 0.0025
    #     = [1.959964·0.371147 + 0.841621·0.322749]² / 0.0025
    #     = [0.727434 + 0.271632]² / 0.0025 = 399.25 → N = 10·n_c = 3992.5 → 3993.
    assert float(stats.sample_size(0.10, 0.05, holdout=0.1)) == 3993


def test_sample_size_is_infinite_without_a_lift_or_holdout():
    assert np.isinf(stats.sample_size(0.1, 0.0))
    assert np.isinf(stats.sample_size(0.1, 0.05, holdout=0.0))
    assert np.isinf(stats.sample_size(0.95, 0.1))


def test_minimum_detectable_lift_inverts_sample_size():
    assert float(stats.minimum_detectable_lift(1372, 0.10, holdout=0.5)) == pytest.approx(
        0.05, abs=2e-4
    )
    mde = stats.minimum_detectable_lift([3993, 40_000], 0.10, holdout=0.1)
    assert mde[0] == pytest.approx(0.05, abs=2e-4)
    assert mde[1] < mde[0]  # more customers detect smaller lifts
    # sample_size(mde) ≈ n: the round trip closes
    assert float(stats.sample_size(0.10, mde[1], holdout=0.1)) == pytest.approx(40_000, rel=1e-3)


def test_minimum_detectable_lift_nan_when_too_small():
    assert math.isnan(float(stats.minimum_detectable_lift(10, 0.5, holdout=0.1)))
    assert math.isnan(float(stats.minimum_detectable_lift(0, 0.1)))


def test_verdict_works():
    v = stats.verdict(56, 70, 48, 80)
    assert v.status == "works"
    assert v.text == "lift +20.0 pts, CI +5.2 to +33.4: works"


def test_verdict_undecided_says_how_many_more():
    # 30/100 vs 8/50: lift 0.14, CI -0.9 to +26.3 pts. Need at p_c = 0.16, Δ = 0.14,
    # h = 1/3 (k = 2): p̄ = 0.2533; n_c = [1.959964·sqrt(0.2533·0.7467·1.5)
    #  + 0.841621·sqrt(0.1344 + 0.21/2)]²/0.0196 = [1.0440 + 0.4118]²/0.0196 = 108.13
    # → N = 3·n_c = 324.4 → 325, minus 150 → 175 → "~180" (two significant figures, up).
    v = stats.verdict(30, 100, 8, 50)
    assert v.status == "undecided"
    assert v.more_needed == 180
    assert v.text == (
        "lift +14.0 pts, CI -0.9 to +26.3: not distinguishable from control yet; "
        "need ~180 more customers"
    )


def test_verdict_no_lift_and_harm_and_no_data():
    assert stats.verdict(10, 100, 10, 100).text.endswith("no lift so far")
    assert stats.verdict(5, 200, 40, 200).status == "harms"
    assert stats.verdict(5, 100, 0, 0).status == "no_data"


def test_roi_definition():
    # treated: 900 customers, 45,000 revenue (50 each); control: 100, 4,000 (40 each)
    # value regained = (50 − 40) × 900 = 9,000; cost = 1,500 + 500 = 2,000
    # ROI = (9,000 − 2,000) / 2,000 = 3.5
    r = stats.roi(
        revenue_treat=45_000,
        n_treat=900,
        revenue_ctrl=4_000,
        n_ctrl=100,
        coupon_cost=1_500,
        action_cost=500,
    )
    assert r.value_regained == pytest.approx(9_000)
    assert r.cost == pytest.approx(2_000)
    assert r.roi == pytest.approx(3.5)


def test_roi_without_cost_or_control():
    r = stats.roi(
        revenue_treat=100, n_treat=10, revenue_ctrl=0, n_ctrl=0, coupon_cost=0, action_cost=0
    )
    assert r.value_regained == 0 and r.roi is None


def test_best_moment_finds_the_steepest_fall():
    # Weekly buckets, 100 enrollments each; rate 40, 38, 36, 20, 10, 8, 7 %.
    counts = [100] * 7
    hits = [40, 38, 36, 20, 10, 8, 7]
    bm = stats.best_moment_from_buckets(counts, hits, width=7)
    # smoothed (window 3, count-weighted): 39, 38, 31.33, 22, 12.67, 8.33, 7.5 %
    assert bm.smoothed * 100 == pytest.approx([39, 38, 31.333, 22, 12.667, 8.333, 7.5], abs=1e-3)
    # slopes per 7 days: -1, -6.67, -9.33, -9.33, -4.33, -0.83 → first steepest is between
    # buckets 2 and 3 (a tie at 2→3 and 3→4 resolves to the earlier): centre of bucket 2.
    assert bm.fall_at == pytest.approx(17.5)
    assert stats.suggested_first_delay(bm.fall_at, 10.0) == 7
    assert stats.suggested_first_delay(bm.fall_at, 30.0) == 0


def test_best_moment_skips_small_buckets_and_needs_three():
    bm = stats.best_moment_from_buckets([100, 5, 100], [50, 5, 10], width=7)
    assert math.isnan(bm.rate[1])
    assert bm.fall_at is None  # two kept buckets only
    assert stats.suggested_first_delay(None, 3) is None


def test_best_moment_from_raw_values_buckets_by_week():
    days = np.r_[np.full(50, 3), np.full(50, 10), np.full(50, 17), np.full(50, 24)]
    hit = np.r_[
        np.ones(40),
        np.zeros(10),
        np.ones(35),
        np.zeros(15),
        np.ones(10),
        np.zeros(40),
        np.ones(8),
        np.zeros(42),
    ]
    bm = stats.best_moment(days, hit, width=7, max_days=28)
    assert list(bm.counts) == [50, 50, 50, 50]
    assert list(bm.reengaged) == [40, 35, 10, 8]
    assert bm.fall_at == pytest.approx(10.5)

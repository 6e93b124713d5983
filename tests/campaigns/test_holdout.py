"""Holdout assignment is a stable, recomputable hash of (plan, customer)."""

import hashlib

from campaigns.holdout import holdout_arm, holdout_arms, holdout_fraction


def test_same_plan_and_customer_always_get_the_same_arm():
    assert [holdout_arm(7, c, 10) for c in range(500)] == [
        holdout_arm(7, c, 10) for c in range(500)
    ]


def test_the_fraction_is_the_documented_hash():
    digest = hashlib.sha256(b"lifecycle-holdout:3:42").digest()
    assert holdout_fraction(3, 42) == int.from_bytes(digest[:8], "big") / 2**64


def test_control_share_matches_the_percentage():
    arms = holdout_arms(11, range(20_000), 10)
    share = arms.count("control") / len(arms)
    # Binomial sd for n=20,000, p=0.1 is 0.0021: 4 sd either side.
    assert 0.0915 < share < 0.1085


def test_arms_differ_between_plans_and_grow_monotonically_with_the_percentage():
    a = holdout_arms(1, range(2000), 20)
    b = holdout_arms(2, range(2000), 20)
    assert a != b
    small = {c for c, arm in enumerate(holdout_arms(1, range(2000), 10)) if arm == "control"}
    large = {c for c, arm in enumerate(a) if arm == "control"}
    assert small <= large


def test_zero_percent_holds_out_nobody():
    assert set(holdout_arms(5, range(1000), 0)) == {"treatment"}

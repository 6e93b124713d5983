"""The engine's database layer: forward-decay sums, refresh, rescore, stages over time."""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers import jobs
from customers.engagement import (
    engagement_explain,
    engagement_rebase,
    engagement_refresh,
    engine_config,
    touchpoint_add,
)
from customers.engine import decay, stages
from customers.models import (
    Engagement,
    JobChunk,
    JobRun,
    PendingTouchpoint,
    ScoreState,
    StageChange,
    Touchpoint,
    TouchpointType,
)
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def brute_force_raw(customer, now: datetime) -> tuple[float, float]:
    """Σ w·2^(−age/h) over the whole history with current weights, and Σ|terms| (scale)."""
    h = engine_config().half_life_days
    terms = [
        float(w) * 2 ** (-(now - t).total_seconds() / (h * 86400))
        for w, t in Touchpoint.objects.filter(customer=customer, type__is_active=True).values_list(
            "type__weight", "occurred_at"
        )
    ]
    return sum(terms), sum(abs(x) for x in terms)


def stored_raw(customer, now: datetime) -> float:
    config = engine_config()
    e = ScoreState.objects.get(customer=customer)
    return float(
        decay.raw_score(
            e.decay_sum, now.timestamp(), epoch=config.epoch, half_life_days=config.half_life_days
        )
    )


def new_customer(**kwargs):
    customer = CustomerFactory(signup_date=(T0 - timedelta(days=200)).date(), **kwargs)
    return customer


def add(customer, key: str, when: datetime):
    return touchpoint_add(
        customer=customer, type=TouchpointType.objects.get(key=key), occurred_at=when
    )


TYPE_KEYS = ["login", "email_open", "purchase", "unsubscribe", "complaint", "meeting"]
operations = st.lists(
    st.one_of(
        st.tuples(st.just("ingest"), st.sampled_from(TYPE_KEYS), st.floats(-400, 0)),
        st.tuples(st.just("time"), st.floats(0, 120)),
        st.tuples(st.just("refresh")),
        st.tuples(st.just("rebase")),
        st.tuples(st.just("weight"), st.sampled_from(TYPE_KEYS), st.integers(-20, 30)),
    ),
    min_size=1,
    max_size=14,
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_score_equals_brute_force_sum_after_any_interleaving(ops):
    customer = new_customer()
    now = T0
    for op in ops:
        if op[0] == "ingest":
            add(customer, op[1], now + timedelta(days=op[2]))  # backfills included
        elif op[0] == "time":
            now += timedelta(days=op[1])
        elif op[0] == "refresh":
            engagement_refresh(now=now)
        elif op[0] == "rebase":
            engagement_refresh(now=now)
            engagement_rebase(new_epoch=now)
        else:
            TouchpointType.objects.filter(key=op[1]).update(weight=Decimal(op[2]))
            jobs.run_inline(jobs.rescore_start(full=False))  # what a weight change starts
    engagement_refresh(now=now)
    expected, scale = brute_force_raw(customer, now)
    assert abs(stored_raw(customer, now) - expected) <= 1e-9 * max(scale, 1e-300)
    score = float(
        engine_config().score(ScoreState.objects.get(customer=customer).decay_sum, now.timestamp())
    )
    assert 0.0 <= score < 100.0


def test_refresh_applies_each_touchpoint_exactly_once():
    customer = new_customer()
    for day in range(10):
        add(customer, "login", T0 - timedelta(days=day))
    first = engagement_refresh(now=T0)
    second = engagement_refresh(now=T0)
    assert (first.touchpoints_applied, second.touchpoints_applied) == (10, 0)
    assert PendingTouchpoint.objects.count() == 0
    expected, _ = brute_force_raw(customer, T0)
    assert stored_raw(customer, T0) == pytest.approx(expected, rel=1e-12)
    engagement = ScoreState.objects.get(customer=customer)
    assert engagement.frequency == 10
    assert engagement.last_engagement_at == T0
    assert engagement.first_engagement_at == T0 - timedelta(days=9)
    assert engagement.expected_gap_days == pytest.approx(1.0)


def test_non_engagement_touchpoints_score_but_do_not_reset_recency():
    customer = new_customer()
    add(customer, "login", T0 - timedelta(days=20))
    add(customer, "cs_call", T0)  # staff called: counts in the score, not as the customer acting
    engagement_refresh(now=T0)
    engagement = ScoreState.objects.get(customer=customer)
    assert engagement.last_engagement_at == T0 - timedelta(days=20)
    assert engagement.frequency == 1


def test_negative_weights_never_push_the_score_below_zero():
    customer = new_customer()
    add(customer, "unsubscribe", T0)
    add(customer, "complaint", T0)
    engagement_refresh(now=T0)
    engagement = Engagement.objects.get(customer=customer)
    assert engagement.customer.score_state.decay_sum < 0
    assert (
        float(engine_config().score(engagement.customer.score_state.decay_sum, T0.timestamp()))
        == 0.0
    )


def test_quiet_customer_moves_down_the_stages_on_time_alone():
    """Engaged → cooling → at risk → lapsed, each exactly when due, with no new event."""
    customer = new_customer()
    for k in range(12):  # an action every 5 days for 55 days
        add(customer, "login", T0 - timedelta(days=55 - 5 * k))
    engagement_refresh(now=T0)
    engagement = Engagement.objects.get(customer=customer)
    assert engagement.stage == "engaged"
    seen = ["engaged"]
    now = T0
    last_score = math.inf
    for expected in ["cooling", "at_risk", "lapsed"]:
        due = ScoreState.objects.get(customer=customer).stage_due_at
        assert due is not None and due > now
        engagement_refresh(now=due - timedelta(seconds=1))
        assert Engagement.objects.get(customer=customer).stage == seen[-1]
        now = due + timedelta(seconds=1)
        engagement_refresh(now=now)
        engagement = Engagement.objects.get(customer=customer)
        assert engagement.stage == expected
        score = float(
            engine_config().score(engagement.customer.score_state.decay_sum, now.timestamp())
        )
        assert 0.0 <= score <= last_score and not math.isnan(score)
        last_score = score
        seen.append(expected)
    # Own rhythm: every 5 days → cooling after max(2×5, 7) = 10 days, at risk after
    # max(4×5, 21) = 21, lapsed after min(max(8×5, 60), 180) = 60 days of silence.
    changes = list(StageChange.objects.filter(customer=customer).order_by("changed_at"))
    last_action = T0
    assert [(c.from_stage, c.to_stage) for c in changes] == [
        ("", "engaged"),
        ("engaged", "cooling"),
        ("cooling", "at_risk"),
        ("at_risk", "lapsed"),
    ]
    offsets = [round((c.changed_at - last_action).total_seconds() / 86400) for c in changes[1:]]
    assert offsets == [10, 21, 60]
    assert ScoreState.objects.get(customer=customer).stage_due_at is None  # nothing further


def test_returning_lapsed_customer_is_reengaged_then_engaged():
    customer = new_customer()
    for k in range(6):
        add(customer, "login", T0 - timedelta(days=200 - 7 * k))
    engagement_refresh(now=T0)
    assert Engagement.objects.get(customer=customer).stage == "lapsed"
    add(customer, "purchase", T0 + timedelta(days=1))
    engagement_refresh(now=T0 + timedelta(days=1))
    assert Engagement.objects.get(customer=customer).stage == "reengaged"
    change = StageChange.objects.filter(customer=customer).latest("changed_at")
    assert (change.from_stage, change.to_stage, change.rule) == ("lapsed", "reengaged", "reengaged")
    assert change.score > 0


def assert_stage_copy_matches_engagement() -> None:
    """The score-state row's copy of the stage (what the refresh reads as the previous stage)
    agrees with ``Engagement`` (what screens show) for every customer the engine staged."""
    staged = Engagement.objects.exclude(stage_since=None).values_list(
        "customer_id",
        "stage",
        "stage_rule",
        "stage_since",
        "customer__score_state__stage_code",
        "customer__score_state__stage_rule_code",
        "customer__score_state__stage_since",
    )
    assert staged, "the scenario staged nobody"
    for customer_id, stage, rule, since, code, rule_code, copy_since in staged:
        assert (code, rule_code, copy_since) == (
            stages.STAGE_CODE[stage],
            stages.RULE_IDS.index(rule),
            since,
        ), customer_id


def test_stage_copy_in_the_score_row_follows_every_engine_pass():
    rhythm = [new_customer() for _ in range(4)]
    for i, customer in enumerate(rhythm):
        for k in range(6):
            add(customer, "login", T0 - timedelta(days=40 * i + 6 * k))
    engagement_refresh(now=T0)  # engaged, cooling, at risk, lapsed: one each
    assert_stage_copy_matches_engagement()
    assert len(set(Engagement.objects.values_list("stage", flat=True))) >= 3
    engagement_refresh(now=T0 + timedelta(days=30))  # time alone moves some
    assert_stage_copy_matches_engagement()
    add(rhythm[3], "purchase", T0 + timedelta(days=31))  # a lapsed customer comes back
    engagement_refresh(now=T0 + timedelta(days=31))
    assert Engagement.objects.get(customer=rhythm[3]).stage == "reengaged"
    assert_stage_copy_matches_engagement()
    jobs.run_inline(jobs.rescore_start(full=True))  # stages everyone again, as of today
    assert_stage_copy_matches_engagement()
    login = TouchpointType.objects.get(key="login")
    login.weight += 2
    login.save()  # the rescore it starts rebuilds the score table on PostgreSQL
    jobs.run_inline(jobs.rescore_start(full=False))
    assert_stage_copy_matches_engagement()


def test_rescore_twice_changes_nothing_and_redelivered_chunk_is_a_no_op():
    customers = [new_customer() for _ in range(5)]
    for c in customers:
        add(c, "login", T0)
    run = jobs.run_inline(jobs.rescore_start(full=True))
    assert run.status == JobRun.Status.SUCCEEDED
    assert run.customers_processed == 5
    before = list(
        Engagement.objects.order_by("pk").values_list("customer__score_state__decay_sum", "stage")
    )
    chunk = JobChunk.objects.filter(run=run).first()
    assert jobs.chunk_run(chunk.pk) is False  # delivered again: already done
    again = jobs.run_inline(jobs.rescore_start(full=True))
    assert again.customers_processed == 0  # same values: no row rewritten
    assert (
        list(
            Engagement.objects.order_by("pk").values_list(
                "customer__score_state__decay_sum", "stage"
            )
        )
        == before
    )


def test_new_rescore_supersedes_a_running_one():
    new_customer()
    old = jobs.rescore_start(full=False)
    new = jobs.rescore_start(full=False)
    old.refresh_from_db()
    assert old.status == JobRun.Status.SUPERSEDED
    chunk = old.chunks.first()
    assert jobs.chunk_run(chunk.pk) is False
    chunk.refresh_from_db()
    assert chunk.status == JobChunk.Status.SKIPPED
    assert jobs.run_inline(new).status == JobRun.Status.SUCCEEDED


def test_explanation_adds_up_to_the_score_and_names_the_rule():
    customer = new_customer()
    add(customer, "purchase", T0 - timedelta(days=3))
    add(customer, "login", T0 - timedelta(days=2))
    add(customer, "login", T0 - timedelta(days=1))
    add(customer, "email_open", T0 - timedelta(days=40))
    engagement_refresh(now=T0)
    explanation = engagement_explain(customer, now=T0)
    assert explanation.contributions[0].key == "purchase"
    assert sum(c.points for c in explanation.contributions) == pytest.approx(explanation.raw_points)
    assert explanation.raw_points == pytest.approx(stored_raw(customer, T0), rel=1e-9)
    assert explanation.stage.stage == Engagement.objects.get(customer=customer).stage
    assert explanation.stage.sentence


def test_nightly_pass_writes_snapshot_trend_and_daily_totals():
    from customers.engine.snapshots import unpack_scores
    from customers.models import ScoreSnapshot, StageDaily

    customer = new_customer()
    for k in range(8):
        add(customer, "login", T0 - timedelta(days=3 * k))
    engagement_refresh(now=T0)
    earlier = T0 - timedelta(days=30)
    jobs.run_inline(jobs.nightly_start(day=earlier.date(), now=earlier))
    run = jobs.run_inline(jobs.nightly_start(day=T0.date(), now=T0))
    assert run.status == JobRun.Status.SUCCEEDED
    snap = ScoreSnapshot.objects.get(day=T0.date(), block=customer.pk // 1024)
    score_now = float(
        engine_config().score(ScoreState.objects.get(customer=customer).decay_sum, T0.timestamp())
    )
    assert unpack_scores(snap.scores)[customer.pk % 1024] == pytest.approx(score_now, abs=0.01)
    engagement = Engagement.objects.get(customer=customer)
    assert engagement.trend_30d is not None
    assert engagement.customer.score_state.p_alive is not None
    assert StageDaily.objects.filter(day=T0.date()).count() >= 1
    again = jobs.nightly_start(day=T0.date(), now=T0)
    assert again.status == JobRun.Status.SKIPPED  # the day is done: overlapping run skips


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_nightly_pass_vacuums_the_engine_tables_on_postgresql():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("VACUUM is PostgreSQL's; SQLite has no dead row versions to clear this way")
    customer = new_customer()
    add(customer, "login", T0 - timedelta(days=1))
    engagement_refresh(now=T0)
    run = jobs.run_inline(jobs.nightly_start(day=T0.date(), now=T0))
    assert run.status == JobRun.Status.SUCCEEDED
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE last_vacuum IS NOT NULL "
            "AND relname IN ('customers_engagement', 'customers_scorestate')"
        )
        assert {row[0] for row in cursor.fetchall()} == {
            "customers_engagement",
            "customers_scorestate",
        }


def test_a_write_by_row_position_falls_back_to_the_key_when_a_row_moved():
    """PostgreSQL: the refresh writes score rows where it read them (TID); a row that is no
    longer there must still be written, by key, never skipped."""
    import numpy as np
    from django.db import connection

    from customers.engagement import _write_columns

    if connection.vendor != "postgresql":
        pytest.skip("row positions (ctid) are PostgreSQL's")
    customers = [new_customer() for _ in range(3)]
    ids = np.array([c.pk for c in customers], dtype=np.int64)
    stale = np.full(3, 1.0 * 65536 + 200)  # block 1, offset 200: nobody's row
    _write_columns(
        ScoreState._meta.db_table, ids, {"p_alive": np.array([0.1, 0.2, 0.3])}, tids=stale
    )
    assert list(
        ScoreState.objects.filter(customer__in=customers)
        .order_by("pk")
        .values_list("p_alive", flat=True)
    ) == [0.1, 0.2, 0.3]

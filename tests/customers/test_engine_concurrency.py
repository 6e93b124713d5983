"""Concurrency: late commits are never skipped, overlapping runs skip, changes trigger work."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction

from customers import jobs
from customers.engagement import engagement_refresh, touchpoint_add
from customers.locks import job_lock
from customers.models import Engagement, JobRun, ScoreState, TouchpointType
from customers.services import engine_change_saved, rescore_needed
from tests.factories import CustomerFactory

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


def in_thread(target) -> threading.Thread:
    def run():
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_touchpoint_committed_late_is_applied_by_a_later_refresh():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes writers: a transaction cannot stay open beside a refresh")
    customer = CustomerFactory()
    login = TouchpointType.objects.get(key="login")
    inserted, may_commit = threading.Event(), threading.Event()

    def slow_ingest():
        with transaction.atomic():
            touchpoint_add(customer=customer, type=login, occurred_at=T0)
            inserted.set()
            assert may_commit.wait(30)

    thread = in_thread(slow_ingest)
    assert inserted.wait(30)
    during = engagement_refresh(now=T0)  # runs while the ingest transaction is still open
    may_commit.set()
    thread.join(30)
    after = engagement_refresh(now=T0)
    assert (during.touchpoints_applied, after.touchpoints_applied) == (0, 1)
    assert ScoreState.objects.get(customer=customer).frequency == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_overlapping_refresh_runs_one_and_skips_the_other():
    holding, release = threading.Event(), threading.Event()

    def hold_lock():
        with job_lock("engine-refresh") as acquired:
            assert acquired
            holding.set()
            assert release.wait(30)

    thread = in_thread(hold_lock)
    assert holding.wait(30)
    skipped = jobs.refresh_run(now=T0)
    release.set()
    thread.join(30)
    ran = jobs.refresh_run(now=T0)
    assert skipped.status == JobRun.Status.SKIPPED
    assert ran.status == JobRun.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_lock_is_free_again_after_its_holder_finishes():
    with job_lock("engine-nightly") as first:
        assert first
    with job_lock("engine-nightly") as second:
        assert second


@pytest.mark.parametrize(
    ("changed", "mode"),
    [
        ({"weight"}, "scores"),
        ({"half_life_days"}, "scores"),
        ({"counts_as_engagement"}, "full"),
        ({"cooling_multiple"}, "full"),
        ({"score_half_point"}, None),  # normalization is applied live: nothing to recompute
        ({"label"}, None),
    ],
)
def test_each_change_starts_the_recomputation_it_needs(changed, mode):
    assert rescore_needed(changed) == mode


@pytest.mark.django_db
def test_weight_change_enqueues_a_rescore_after_commit(
    django_capture_on_commit_callbacks, monkeypatch
):
    sent = []
    from customers import tasks

    monkeypatch.setattr(tasks.rescore_task, "delay", lambda **kw: sent.append(kw))
    with django_capture_on_commit_callbacks(execute=True):
        engine_change_saved(changed=["weight"], what="touchpoint type login", user=None)
    assert sent == [{"full": False, "reason": "touchpoint type login: weight", "triggered_by": ""}]


@pytest.mark.django_db
def test_settings_screen_save_starts_the_rescore(
    login, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    from django.urls import reverse

    from customers import tasks
    from tests.customers.settings_page import settings_form_data

    sent = []
    monkeypatch.setattr(tasks.rescore_task, "delay", lambda **kw: sent.append(kw))
    client = login(admin_user)
    data = settings_form_data(client, half_life_days=60)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("engagement-settings"), data, follow=True)
    assert "A rescore has started" in response.content.decode()
    assert sent and sent[0]["full"] is False and sent[0]["triggered_by"] == admin_user.username


@pytest.mark.django_db
def test_time_alone_refresh_only_touches_customers_due(django_assert_max_num_queries):
    due_customer = CustomerFactory()
    touchpoint_add(
        customer=due_customer, type=TouchpointType.objects.get(key="login"), occurred_at=T0
    )
    engagement_refresh(now=T0)
    quiet = [CustomerFactory() for _ in range(20)]
    for c in quiet:
        Engagement.objects.filter(customer=c).update(stage="lapsed", stage_since=T0)
        ScoreState.objects.filter(customer=c).update(stage_due_at=None)
    result = engagement_refresh(now=T0 + timedelta(days=400))
    assert result.customers == 1  # only the one whose stage was due


@pytest.mark.django_db
def test_touchpoints_arriving_around_a_rescore_count_exactly_once():
    """Queued before the rescore, arriving between its phases, and after: each counted once."""
    from customers.engagement import engine_config
    from customers.engine import decay
    from customers.models import Touchpoint

    login = TouchpointType.objects.get(key="login")
    customer = CustomerFactory()
    touchpoint_add(customer=customer, type=login, occurred_at=T0 - timedelta(days=3))
    engagement_refresh(now=T0)
    touchpoint_add(customer=customer, type=login, occurred_at=T0 - timedelta(days=2))  # queued
    run = jobs.rescore_start(full=False)  # PostgreSQL: phase A stages sums here
    touchpoint_add(customer=customer, type=login, occurred_at=T0 - timedelta(days=1))  # between
    during = engagement_refresh(now=T0)
    jobs.run_inline(run)
    touchpoint_add(customer=customer, type=login, occurred_at=T0)  # after
    engagement_refresh(now=T0)
    engagement_refresh(now=T0)

    if connection.vendor == "postgresql":
        assert during.touchpoints_applied == 0  # the queue waits while a rescore runs
    config = engine_config()
    expected = sum(
        float(
            decay.decay_terms(
                3.0, t.timestamp(), epoch=config.epoch, half_life_days=config.half_life_days
            )
        )
        for t in Touchpoint.objects.filter(customer=customer).values_list("occurred_at", flat=True)
    )
    engagement = Engagement.objects.get(customer=customer)
    assert engagement.customer.score_state.decay_sum == pytest.approx(expected, rel=1e-12)
    assert engagement.customer.score_state.frequency == 4
    from customers.models import PendingTouchpoint

    assert not PendingTouchpoint.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_customers_created_or_deleted_during_a_rebuild_keep_the_table_whole(monkeypatch):
    """Between the rebuild's snapshot and its swap, one customer is created and one deleted
    (other sessions, committed): the new customer's row is carried into the swapped table,
    with its live columns; the deleted one's leftover row is removed by the nightly vacuum."""
    if connection.vendor != "postgresql":
        pytest.skip("the rebuild-and-swap path is PostgreSQL's")
    from customers import engagement
    from customers.models import Customer

    login = TouchpointType.objects.get(key="login")
    kept, doomed = CustomerFactory(), CustomerFactory()
    for customer in (kept, doomed):
        touchpoint_add(customer=customer, type=login, occurred_at=T0 - timedelta(days=1))
    engagement_refresh(now=T0)
    born: dict[str, int] = {}

    def meanwhile() -> None:
        newcomer = CustomerFactory()
        ScoreState.objects.filter(customer=newcomer).update(frequency=7)
        born["id"] = newcomer.pk
        Customer.objects.filter(pk=doomed.pk).delete()

    real_layout = engagement._table_layout

    def layout_after_others_wrote(cursor, table):
        in_thread(meanwhile).join(30)  # after the snapshot's CTAS, before the swap
        return real_layout(cursor, table)

    monkeypatch.setattr(engagement, "_table_layout", layout_after_others_wrote)
    assert engagement.engagement_scores_rebuild() is not None
    assert ScoreState.objects.get(customer_id=born["id"]).frequency == 7  # carried as it stood
    assert ScoreState.objects.get(customer_id=kept.pk).decay_sum > 0
    assert ScoreState.objects.filter(customer_id=doomed.pk).exists()  # left behind by the swap
    assert engagement.engine_tables_vacuum()
    assert not ScoreState.objects.filter(customer_id=doomed.pk).exists()
    assert ScoreState.objects.count() == Customer.objects.count()

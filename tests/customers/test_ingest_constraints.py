"""Migration 0006: the engine queue has no database foreign key to touchpoints, and
touchpoints no index on type alone. Nothing may depend on what was dropped."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from customers.engagement import engagement_refresh, pending_record
from customers.models import (
    Customer,
    Engagement,
    PendingTouchpoint,
    ScoreState,
    StageChange,
    Touchpoint,
    TouchpointType,
)
from tests.factories import TouchpointFactory
from tests.workers import shared_database_url

pytestmark = pytest.mark.django_db


def _queued(touchpoint: Touchpoint) -> None:
    pending_record([touchpoint.pk], [touchpoint.customer_id])


def test_deleting_through_the_orm_still_empties_the_queue():
    touchpoint = TouchpointFactory()
    _queued(touchpoint)
    touchpoint.customer.delete()
    assert not PendingTouchpoint.objects.exists()


def test_a_queued_touchpoint_deleted_behind_the_orms_back_is_drained_harmlessly():
    kept, gone = TouchpointFactory(), TouchpointFactory()
    for t in (kept, gone):
        _queued(t)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Touchpoint._meta.db_table} WHERE id = %s", [gone.pk])
    engagement_refresh(now=timezone.now())
    assert not PendingTouchpoint.objects.exists()
    assert ScoreState.objects.get(customer=kept.customer).frequency == 1
    assert ScoreState.objects.get(customer=gone.customer).frequency == 0


def test_a_type_in_use_is_still_protected_in_the_orm_and_the_database():
    TouchpointFactory()
    login = TouchpointType.objects.get(key="login")
    with pytest.raises(ProtectedError):
        login.delete()
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TouchpointType._meta.db_table} WHERE id = %s", [login.pk])
    assert TouchpointType.objects.filter(pk=login.pk).exists()
    unused = TouchpointType.objects.create(key="unused", label="Unused", channel="web", weight=1)
    unused.delete()


def test_a_touchpoint_for_a_missing_customer_or_type_is_refused_by_the_database():
    """Migration 0010: the references are checked per statement by triggers, not by
    foreign-key constraints; a whole multi-row insert with one bad row is refused."""
    good = TouchpointFactory()
    table = Touchpoint._meta.db_table
    insert = (
        f"INSERT INTO {table} (customer_id, type_id, occurred_at, source, properties, "
        f"received_at) VALUES (%s, %s, %s, 'test', '{{}}', %s), (%s, %s, %s, 'test', '{{}}', %s)"
    )
    now = timezone.now()
    for customer_id, type_id in (
        (good.customer_id + 10_000, good.type_id),
        (good.customer_id, 999),
    ):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                insert,
                [good.customer_id, good.type_id, now, now, customer_id, type_id, now, now],
            )
    assert Touchpoint.objects.count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Touchpoint.objects.filter(pk=good.pk).update(customer_id=good.customer_id + 10_000)
    assert Touchpoint.objects.get().customer_id == good.customer_id


def test_a_stage_change_for_a_missing_customer_is_refused_by_the_database():
    customer = TouchpointFactory().customer
    StageChange.objects.create(
        customer=customer, to_stage="engaged", changed_at=timezone.now(), score=10
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        StageChange.objects.create(
            customer_id=customer.pk + 10_000,
            to_stage="engaged",
            changed_at=timezone.now(),
            score=10,
        )
    assert StageChange.objects.count() == 1


def test_deleting_a_customer_behind_the_orms_back_deletes_its_touchpoints():
    touchpoint = TouchpointFactory()
    other = TouchpointFactory()
    for customer in (touchpoint.customer, other.customer):
        StageChange.objects.create(
            customer=customer, to_stage="engaged", changed_at=timezone.now(), score=10
        )
    with connection.cursor() as cursor:
        for model in (ScoreState, Engagement):  # these keep real (deferred) foreign keys
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE customer_id = %s",
                [touchpoint.customer_id],
            )
        cursor.execute(
            f"DELETE FROM {Customer._meta.db_table} WHERE id = %s", [touchpoint.customer_id]
        )
    assert list(Touchpoint.objects.values_list("pk", flat=True)) == [other.pk]
    assert list(StageChange.objects.values_list("customer_id", flat=True)) == [other.customer_id]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_uncommitted_insert_holds_its_customer_against_deletion():
    """As a foreign key would: while a transaction has inserted touchpoints for a customer,
    another cannot delete that customer (here: it times out waiting for the lock)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time anyway")
    import psycopg

    touchpoint = TouchpointFactory()
    customer_id, type_id = touchpoint.customer_id, touchpoint.type_id
    url = shared_database_url()
    with psycopg.connect(url) as inserter, psycopg.connect(url, autocommit=True) as deleter:
        inserter.execute(
            f"INSERT INTO {Touchpoint._meta.db_table} (customer_id, type_id, occurred_at, "
            f"source, properties, received_at) VALUES (%s, %s, now(), 'test', '{{}}', now())",
            [customer_id, type_id],
        )
        deleter.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            deleter.execute(f"DELETE FROM {Customer._meta.db_table} WHERE id = %s", [customer_id])
        inserter.commit()
        # Once the insert committed, deleting the customer takes both touchpoints along.
        for model in (PendingTouchpoint, ScoreState, Engagement):
            deleter.execute(
                f"DELETE FROM {model._meta.db_table} WHERE customer_id = %s", [customer_id]
            )
        deleter.execute(f"DELETE FROM {Customer._meta.db_table} WHERE id = %s", [customer_id])
    assert not Touchpoint.objects.filter(customer_id=customer_id).exists()


def test_the_queue_and_type_index_are_gone_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("introspects PostgreSQL catalogs")
    with connection.cursor() as cursor:
        queue = connection.introspection.get_constraints(cursor, PendingTouchpoint._meta.db_table)
        touchpoints = connection.introspection.get_constraints(cursor, Touchpoint._meta.db_table)
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [Touchpoint._meta.db_table],
        )
        triggers = {row[0] for row in cursor.fetchall()}
    assert not [c for c in queue.values() if c["foreign_key"]]
    assert not [c for c in queue.values() if c["index"] and c["columns"] == ["customer_id"]]
    assert not [c for c in touchpoints.values() if c["index"] and c["columns"] == ["type_id"]]
    assert not [c for c in touchpoints.values() if c["foreign_key"]]  # triggers instead
    assert triggers == {
        "customers_touchpoint_references_insert",
        "customers_touchpoint_references_update",
    }

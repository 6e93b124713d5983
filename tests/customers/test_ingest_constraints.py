"""Migration 0006: the engine queue has no database foreign key to touchpoints, and
touchpoints no index on type alone. Nothing may depend on what was dropped."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from customers.engagement import engagement_refresh, pending_record
from customers.models import PendingTouchpoint, ScoreState, Touchpoint, TouchpointType
from tests.factories import TouchpointFactory

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
    if connection.vendor == "postgresql":  # SQLite checks its (deferred) keys only at commit
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"DELETE FROM {TouchpointType._meta.db_table} WHERE id = %s", [login.pk])
    unused = TouchpointType.objects.create(key="unused", label="Unused", channel="web", weight=1)
    unused.delete()


def test_the_queue_and_type_index_are_gone_on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("introspects PostgreSQL catalogs")
    with connection.cursor() as cursor:
        queue = connection.introspection.get_constraints(cursor, PendingTouchpoint._meta.db_table)
        touchpoints = connection.introspection.get_constraints(cursor, Touchpoint._meta.db_table)
    assert not [c for c in queue.values() if c["foreign_key"]]
    assert not [c for c in touchpoints.values() if c["index"] and c["columns"] == ["type_id"]]
    assert [c for c in touchpoints.values() if c["foreign_key"] and c["columns"] == ["type_id"]]

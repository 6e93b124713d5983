from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

from customers.models import EngagementSettings, Touchpoint, TouchpointType
from tests.factories import CustomerFactory, TouchpointFactory

pytestmark = pytest.mark.django_db


def test_duplicate_idempotency_key_from_same_source_is_rejected():
    customer = CustomerFactory()
    TouchpointFactory(customer=customer, source="segment", idempotency_key="msg-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        TouchpointFactory(customer=customer, source="segment", idempotency_key="msg-1")
    assert Touchpoint.objects.count() == 1


def test_same_idempotency_key_from_another_source_is_a_different_event():
    customer = CustomerFactory()
    TouchpointFactory(customer=customer, source="segment", idempotency_key="msg-1")
    TouchpointFactory(customer=customer, source="csv", idempotency_key="msg-1")
    assert Touchpoint.objects.count() == 2


def test_touchpoints_without_idempotency_key_are_not_deduplicated():
    customer = CustomerFactory()
    TouchpointFactory(customer=customer, idempotency_key=None)
    TouchpointFactory(customer=customer, idempotency_key=None)
    assert Touchpoint.objects.filter(customer=customer).count() == 2


def test_external_id_is_unique():
    CustomerFactory(external_id="acme-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        CustomerFactory(external_id="acme-1")


def test_touchpoint_type_in_use_cannot_be_deleted():
    from django.db.models import ProtectedError

    TouchpointFactory(occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ProtectedError):
        TouchpointType.objects.get(key="login").delete()


def test_default_touchpoint_types_include_negative_unsubscribe():
    keys = set(TouchpointType.objects.values_list("key", flat=True))
    assert {
        "email_open",
        "email_click",
        "login",
        "product_use",
        "purchase",
        "trial_start",
        "demo",
        "support_case",
        "survey_answer",
        "social_mention",
        "phone_call",
        "meeting",
        "unsubscribe",
    } <= keys
    unsubscribe = TouchpointType.objects.get(key="unsubscribe")
    assert unsubscribe.weight < 0
    assert not unsubscribe.counts_as_engagement


def test_engagement_settings_is_a_single_row():
    first = EngagementSettings.load()
    assert EngagementSettings.load().pk == first.pk == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        EngagementSettings.objects.create(pk=2)

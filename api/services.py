"""Writes the REST API makes: customers (create, update, upsert) and single touchpoints.

Views validate with serializers and call these; every new customer gets its engine rows in
the same transaction (``engine_rows_ensure``), every touchpoint goes through the engine's
queue (``touchpoint_add``).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.engagement import engine_rows_ensure, touchpoint_add
from customers.models import Customer, Touchpoint


def customer_create(*, data: dict[str, Any]) -> Customer:
    """Create a customer (signup date defaults to today) with its engine rows."""
    data = {"signup_date": timezone.localdate(), **data}
    with transaction.atomic():
        customer = Customer.objects.create(**data)
        engine_rows_ensure([customer.pk])
    return customer


def customer_update(*, customer: Customer, data: dict[str, Any]) -> Customer:
    """Set the given fields only (a partial update); other fields keep their values."""
    if not data:
        return customer
    for name, value in data.items():
        setattr(customer, name, value)
    customer.save(update_fields=[*data, "updated_at"])
    return customer


def customer_upsert(*, external_id: str, data: dict[str, Any]) -> tuple[Customer, bool]:
    """Update the customer with ``external_id`` with ``data``, or create it; ``(customer,
    created)``. Safe under concurrent calls for the same new id: the loser of the insert race
    updates the winner's row instead of failing."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(external_id=external_id).first()
        if customer is None:
            try:
                with transaction.atomic():
                    return customer_create(data={**data, "external_id": external_id}), True
            except IntegrityError:
                customer = Customer.objects.select_for_update().get(external_id=external_id)
        return customer_update(customer=customer, data=data), False


def touchpoint_record(
    *,
    customer: Customer,
    type: Any,
    occurred_at: Any,
    value: Any = None,
    source: str = "api",
    idempotency_key: str | None = None,
    properties: dict | None = None,
) -> tuple[Touchpoint, bool]:
    """One touchpoint through the engine's queue; ``(touchpoint, created)``. A repeat of a
    (source, idempotency_key) already stored returns the stored touchpoint unchanged."""
    if idempotency_key is not None:
        existing = Touchpoint.objects.filter(source=source, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    try:
        with transaction.atomic():
            touchpoint = touchpoint_add(
                customer=customer,
                type=type,
                occurred_at=occurred_at,
                value=value,
                source=source,
                idempotency_key=idempotency_key,
                properties=properties,
            )
    except IntegrityError:
        if idempotency_key is None:
            raise
        return Touchpoint.objects.get(source=source, idempotency_key=idempotency_key), False
    return touchpoint, True

"""Touchpoint filters for the API list (customers use the shared ``CustomerFilter``)."""

from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

from customers.models import Channel, Touchpoint

BIGINT_MAX = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A row id: a whole number from 1 to PostgreSQL's bigint maximum. Anything else is a
    400 naming the bound, not a database overflow (found by the schemathesis run)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", BIGINT_MAX)
        super().__init__(*args, **kwargs)


class _UtcIsoDateTimeField(IsoDateTimeField):
    """ISO 8601 with any offset Python accepts, handed to the database in UTC: PostgreSQL
    refuses offsets beyond ±15:59 (``-20:36`` was a 500, found by the schemathesis run)."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError("This time is out of range.", code="invalid") from exc


class InstantFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 instant, compared in UTC (see ``_UtcIsoDateTimeField``)."""

    field_class = _UtcIsoDateTimeField


class TouchpointFilter(django_filters.FilterSet):
    customer = IdFilter(field_name="customer_id", label="Customer id")
    customer_external_id = django_filters.CharFilter(
        field_name="customer__external_id", label="Customer external id"
    )
    type = django_filters.CharFilter(field_name="type__key", label="Touchpoint type key")
    channel = django_filters.ChoiceFilter(
        field_name="type__channel", choices=Channel.choices, label="Channel"
    )
    occurred_after = InstantFilter(
        field_name="occurred_at", lookup_expr="gte", label="Occurred at or after"
    )
    occurred_before = InstantFilter(
        field_name="occurred_at", lookup_expr="lt", label="Occurred before"
    )
    source = django_filters.CharFilter(field_name="source", label="Source")

    class Meta:
        model = Touchpoint
        fields: list[str] = []

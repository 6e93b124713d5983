"""Touchpoint filters for the API list (customers use the shared ``CustomerFilter``)."""

from __future__ import annotations

import django_filters

from customers.models import Channel, Touchpoint


class TouchpointFilter(django_filters.FilterSet):
    customer = django_filters.NumberFilter(field_name="customer_id", label="Customer id")
    customer_external_id = django_filters.CharFilter(
        field_name="customer__external_id", label="Customer external id"
    )
    type = django_filters.CharFilter(field_name="type__key", label="Touchpoint type key")
    channel = django_filters.ChoiceFilter(
        field_name="type__channel", choices=Channel.choices, label="Channel"
    )
    occurred_after = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="gte", label="Occurred at or after"
    )
    occurred_before = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", lookup_expr="lt", label="Occurred before"
    )
    source = django_filters.CharFilter(field_name="source", label="Source")

    class Meta:
        model = Touchpoint
        fields: list[str] = []

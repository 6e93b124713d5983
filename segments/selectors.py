"""Reading segments: their customers, size, stage mix and score distribution."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.db.models import Count, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from customers.engagement import engine_config
from customers.filters import CustomerFilter
from customers.listing import ResultCount, result_count
from customers.models import Customer, Stage
from customers.selectors import score_band_q
from segments.models import Segment

SCORE_EDGES = list(range(0, 101, 10))


def params_querydict(params: dict[str, list[str]]) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, values in params.items():
        data.setlist(name, [str(v) for v in values])
    return data


def filter_customers(params: dict[str, list[str]], *, now: datetime | None = None) -> QuerySet:
    """Customers matching stored (already validated) filter params."""
    filterset = CustomerFilter(
        params_querydict(params), queryset=Customer.objects.all(), now=now or timezone.now()
    )
    if not filterset.is_valid():
        # Stored params were valid when saved; a filter that changed since must not match
        # everybody silently.
        raise ValueError(f"Stored segment filter no longer valid: {filterset.errors.as_text()}")
    return filterset.qs


def segment_customers(segment: Segment, *, now: datetime | None = None) -> QuerySet:
    return filter_customers(segment.params, now=now)


def segment_size(segment: Segment, *, now: datetime | None = None) -> ResultCount:
    return result_count(segment_customers(segment, now=now))


def stage_mix(customers: QuerySet) -> dict[str, int]:
    """Customers per stage (all stages, zeros included)."""
    found = dict(
        customers.order_by()
        .values_list("engagement__stage")
        .annotate(n=Count("pk"))
        .values_list("engagement__stage", "n")
    )
    return {value: found.get(value, 0) for value in Stage.values}


def score_distribution(customers: QuerySet, *, now: datetime | None = None) -> list[int]:
    """Customers per 10-point score band, in one pass (bands are decay-sum ranges)."""
    now = now or timezone.now()
    config = engine_config()
    bands = list(itertools.pairwise(SCORE_EDGES))
    aggregates = {}
    for i, (low, high) in enumerate(bands):
        # Half-open [low, high) except the last band: a band's upper edge belongs to the next.
        q = score_band_q(low, None, now=now, config=config)
        if i < len(bands) - 1:
            q &= ~score_band_q(high, None, now=now, config=config)
        aggregates[f"b{i}"] = Count("pk", filter=q)
    counts = customers.order_by().aggregate(**aggregates)
    return [counts[f"b{i}"] for i in range(len(bands))]


def active_filter_summary(params: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(label, value) pairs describing the filter, for people."""
    filterset = CustomerFilter(params_querydict(params), queryset=Customer.objects.none())
    labels = {name: (f.label or name) for name, f in filterset.filters.items()}
    return [(str(labels.get(name, name)), ", ".join(values)) for name, values in params.items()]


def segments_q(text: str) -> Q:
    return Q(name__icontains=text) | Q(description__icontains=text)

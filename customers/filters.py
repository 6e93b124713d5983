"""The customer filters every list shares: screens, segments, the API and exports.

One ``CustomerFilter`` so a segment saved on a screen means the same customers in the API
and in an export. A segment stores the filter's query parameters; ``CustomerFilter(params,
queryset=...)`` turns them back into customers. Engagement filters read the engine's rows
(stage, P(still engaged), last engagement action, trend) and the decay sum for score bands,
each with an index; none aggregates touchpoints except the channel filter, which checks one
``EXISTS`` per candidate on the (customer, time) index.
"""

from __future__ import annotations

from datetime import timedelta

import django_filters
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from customers.models import Channel, Customer, SpendTier, Stage, Touchpoint
from customers.selectors import score_band_q

MAX_DAYS = 36_500  # a hundred years: any longer span is a typo


def _owner_choices():
    """Users who own customers: an ``EXISTS`` per user on the owner index (a ``DISTINCT``
    over the join reads every owned customer: 230 ms at a million customers)."""
    owns = Customer.objects.filter(owner=OuterRef("pk"))
    return get_user_model().objects.filter(Exists(owns)).order_by("username")


class CustomerFilter(django_filters.FilterSet):
    """Filters by profile, engagement and recent activity. Unknown or malformed values make
    the filter invalid (``is_valid()`` / ``errors``) instead of being ignored."""

    q = django_filters.CharFilter(method="filter_search", label="Search")
    # distinct=False: one engagement row per customer, so no duplicates to remove, and a
    # DISTINCT would stop PostgreSQL from walking the sort index (a sort of every match).
    stage = django_filters.MultipleChoiceFilter(
        field_name="engagement__stage", choices=Stage.choices, label="Stage", distinct=False
    )
    # Every number has its range, so a value outside it is a clear "must be at most …" error
    # (400 in the API) rather than a date arithmetic overflow.
    score_min = django_filters.NumberFilter(
        method="filter_score", label="Score from", min_value=0, max_value=100
    )
    score_max = django_filters.NumberFilter(
        method="filter_score", label="Score to", min_value=0, max_value=100
    )
    p_alive_min = django_filters.NumberFilter(
        field_name="score_state__p_alive",
        lookup_expr="gte",
        label="P(still engaged) from",
        min_value=0,
        max_value=1,
    )
    p_alive_max = django_filters.NumberFilter(
        field_name="score_state__p_alive",
        lookup_expr="lte",
        label="P(still engaged) to",
        min_value=0,
        max_value=1,
    )
    inactive_days_min = django_filters.NumberFilter(
        method="filter_inactive_min",
        label="No engagement action for at least (days)",
        min_value=0,
        max_value=MAX_DAYS,
    )
    inactive_days_max = django_filters.NumberFilter(
        method="filter_inactive_max",
        label="Last engagement action within (days)",
        min_value=0,
        max_value=MAX_DAYS,
    )
    trend_min = django_filters.NumberFilter(
        field_name="engagement__trend_30d",
        lookup_expr="gte",
        label="30-day trend from",
        min_value=-100,
        max_value=100,
    )
    trend_max = django_filters.NumberFilter(
        field_name="engagement__trend_30d",
        lookup_expr="lte",
        label="30-day trend to",
        min_value=-100,
        max_value=100,
    )
    region = django_filters.CharFilter(field_name="region", label="Region")
    plan = django_filters.CharFilter(field_name="plan", label="Plan")
    spend_tier = django_filters.MultipleChoiceFilter(
        field_name="spend_tier", choices=SpendTier.choices, label="Spend tier", distinct=False
    )
    owner = django_filters.ModelChoiceFilter(
        field_name="owner", queryset=_owner_choices(), label="Owner"
    )
    renewal_within_days = django_filters.NumberFilter(
        method="filter_renewal", label="Renews within (days)", min_value=0, max_value=MAX_DAYS
    )
    channel = django_filters.ChoiceFilter(
        method="filter_channel", choices=Channel.choices, label="Touchpoint on channel"
    )
    channel_days = django_filters.NumberFilter(
        method="filter_noop", label="…in the last (days)", min_value=1, max_value=MAX_DAYS
    )
    email_opt_out = django_filters.BooleanFilter(field_name="email_opt_out")

    class Meta:
        model = Customer
        fields: list[str] = []

    def __init__(self, *args, now=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.now = now or timezone.now()
        self.filters["owner"].queryset = _owner_choices()

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(external_id=value)
            | Q(email__iexact=value)
            | Q(name__icontains=value)
            | Q(company__icontains=value)
        )

    def filter_score(self, queryset: QuerySet, name: str, value) -> QuerySet:
        if name == "score_min":
            return queryset.filter(score_band_q(float(value), None, now=self.now))
        return queryset.filter(score_band_q(None, float(value), now=self.now))

    def filter_inactive_min(self, queryset: QuerySet, name: str, value) -> QuerySet:
        cutoff = self.now - timedelta(days=float(value))
        return queryset.filter(
            Q(score_state__last_engagement_at__lte=cutoff)
            | Q(score_state__last_engagement_at__isnull=True)
        )

    def filter_inactive_max(self, queryset: QuerySet, name: str, value) -> QuerySet:
        cutoff = self.now - timedelta(days=float(value))
        return queryset.filter(score_state__last_engagement_at__gte=cutoff)

    def filter_renewal(self, queryset: QuerySet, name: str, value) -> QuerySet:
        today = self.now.date()
        return queryset.filter(
            renewal_date__gte=today, renewal_date__lte=today + timedelta(days=int(value))
        )

    def filter_channel(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        days = self.form.cleaned_data.get("channel_days") or 30
        recent = Touchpoint.objects.filter(
            customer=OuterRef("pk"),
            type__channel=value,
            occurred_at__gte=self.now - timedelta(days=float(days)),
        )
        return queryset.filter(Exists(recent))

    def filter_noop(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset  # read by filter_channel

    def active_filters(self) -> dict[str, object]:
        """The filters in use with their cleaned values (for summaries and segment names)."""
        return {k: v for k, v in self.form.cleaned_data.items() if v not in (None, "", [])}

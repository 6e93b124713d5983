"""The renewal-risk list: accounts renewing soon whose engagement is low, falling or slipping.

Which accounts (all from the engine's state, nothing aggregated over touchpoints):

- a renewal date from today to ``days`` days ahead (index on ``renewal_date``), and
- any of: score below ``LOW_SCORE``; a 30-day trend below ``FALLING_TREND`` (down more than
  5 points: a change of a point or two is noise); stage cooling, at risk or lapsed.

Ranking — **revenue at risk** = lifetime revenue × risk, where risk = 1 − P(still engaged)
(the MBG/NBD probability the engine keeps), or 1 − score/100 for customers the model has no
probability for yet (no engagement action). Lifetime revenue stands in for the account's
value because the renewal's own contract value is not in the data; the product of value
and probability of being gone is the expected loss if nobody acts.

Ranking every renewing account costs a join over a few hundred thousand rows at a million
customers, too slow for a request. So the list is precomputed: ``renewal_risk_candidates``
is the definition, ``success.risk.renewal_risk_refresh`` stores its rows (``RenewalRisk``),
and the screen, the summary and the export read those rows (``renewal_risk_accounts``,
``renewal_risk_summary``) — as of the last refresh, which the screen shows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import (
    F,
    FloatField,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    Value,
    prefetch_related_objects,
)
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone

from customers.engagement import EngineConfig, engine_config
from customers.models import Customer, Stage, Touchpoint
from customers.selectors import customers_with_state, score_band_q
from success.models import CustomerNote, RenewalRiskDay, RenewalRiskRefresh

DEFAULT_DAYS = 90
MAX_DAYS = 730  # the longest window the screen offers; the stored list covers it
LOW_SCORE = 40.0
FALLING_TREND = -5.0
RISKY_STAGES = (Stage.COOLING, Stage.AT_RISK, Stage.LAPSED)
SECONDS_PER_DAY = 86_400


def renewal_risk_candidates(
    *,
    days: int = MAX_DAYS,
    now: datetime | None = None,
    config: EngineConfig | None = None,
) -> QuerySet[Customer]:
    """The live definition of the list: accounts renewing within ``days`` whose engagement
    is low, falling or slipping, with ``score``, ``risk`` and ``revenue_at_risk`` annotated.

    Ranks every renewing account, so it is what ``success.risk.renewal_risk_refresh`` stores
    (off the request path), not what a screen reads: screens read ``renewal_risk_accounts``.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    config = config or engine_config()
    accounts = Customer.objects.filter(renewal_date__range=(today, today + timedelta(days=days)))
    slipping = (
        score_band_q(None, LOW_SCORE, now=now, config=config)
        | Q(engagement__trend_30d__lt=FALLING_TREND)
        | Q(engagement__stage__in=RISKY_STAGES)
    )
    risk = Coalesce(
        Value(1.0) - F("score_state__p_alive"),
        Value(1.0) - F("score") / Value(100.0),
        output_field=FloatField(),
    )
    return (
        customers_with_state(accounts.filter(slipping), now=now, config=config)
        .annotate(risk=risk)
        .annotate(revenue_at_risk=Cast("lifetime_revenue", FloatField()) * F("risk"))
        .order_by("-revenue_at_risk", "id")
    )


def renewal_risk_accounts(
    *,
    days: int = DEFAULT_DAYS,
    owner=None,
    today: date | None = None,
    now: datetime | None = None,
    config: EngineConfig | None = None,
) -> QuerySet[Customer]:
    """The accounts on the list (as of its last refresh) renewing within ``days``, highest
    revenue at risk first, with ``score`` (live), ``risk`` and ``revenue_at_risk``.

    Reads the precomputed ``RenewalRisk`` rows: a page walks the rank index and joins 50
    customers. ``owner``: only that staff user's accounts ("my accounts").
    """
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    window = {"renewal_risk__renewal_date__range": (today, today + timedelta(days=days))}
    if owner is not None:
        window["renewal_risk__owner_id"] = owner.pk
    return (
        customers_with_state(Customer.objects.filter(**window), now=now, config=config)
        .annotate(risk=F("renewal_risk__risk"), revenue_at_risk=F("renewal_risk__revenue_at_risk"))
        .order_by("-revenue_at_risk", "id")
    )


@dataclass(frozen=True)
class RiskSummary:
    accounts: int
    revenue_at_risk: float
    as_of: datetime | None


def renewal_risk_summary(
    *, days: int = DEFAULT_DAYS, owner=None, today: date | None = None
) -> RiskSummary:
    """How many accounts the list holds and their total revenue at risk, and when the list
    was computed: sums over the per-day totals (``RenewalRiskDay``, at most a row per day
    and owner), one primary-key read."""
    today = today or timezone.localdate()
    days_rows = RenewalRiskDay.objects.filter(
        renewal_date__range=(today, today + timedelta(days=days))
    )
    if owner is not None:
        days_rows = days_rows.filter(owner_id=owner.pk)
    totals = days_rows.aggregate(n=Sum("accounts"), total=Sum("revenue_at_risk"))
    refreshed = RenewalRiskRefresh.objects.filter(pk=1).values_list("computed_at", flat=True)
    return RiskSummary(
        accounts=totals["n"] or 0,
        revenue_at_risk=totals["total"] or 0.0,
        as_of=refreshed.first(),
    )


def last_action_types(customers: Sequence[Customer]) -> dict[int, str]:
    """Key of the touchpoint type of each customer's last engagement action: one query for
    the whole page, a narrow time range per customer on the (customer, time) index.

    The engine keeps the last action's time as epoch seconds round-tripped through floats,
    so it can differ from the stored touchpoint time by microseconds: match within a second.
    """
    lasts = {
        c.pk: c.score_state.last_engagement_at
        for c in customers
        if c.score_state.last_engagement_at is not None
    }
    if not lasts:
        return {}
    slack = timedelta(seconds=1)
    around_last = Q()
    for customer_id, at in lasts.items():
        around_last |= Q(customer_id=customer_id, occurred_at__range=(at - slack, at + slack))
    rows = Touchpoint.objects.filter(
        around_last, type__counts_as_engagement=True, type__is_active=True
    ).values_list("customer_id", "occurred_at", "type__key")
    found: dict[int, tuple[timedelta, str]] = {}
    for customer_id, occurred_at, key in rows:
        distance = abs(occurred_at - lasts[customer_id])
        if customer_id not in found or distance < found[customer_id][0]:
            found[customer_id] = (distance, key)
    return {customer_id: key for customer_id, (_d, key) in found.items()}


def risk_reason(
    *,
    score: float,
    trend: float | None,
    last_action_at: datetime | None,
    last_action_key: str | None,
    expected_gap_days: float | None,
    signup: date,
    now: datetime,
) -> str:
    """The reason in words, e.g. "score 31, down 24 in 30 days; no login for 41 days,
    usually every 6"."""
    head = f"score {round(score)}"
    if trend is not None and not math.isnan(trend):
        if round(trend) < 0:
            head += f", down {round(-trend)} in 30 days"
        elif round(trend) > 0:
            head += f", up {round(trend)} in 30 days"
    if last_action_at is None:
        since = (now.date() - signup).days
        return f"{head}; no engagement action since signing up {_days(since)} ago"
    silent = int((now - last_action_at).total_seconds() // SECONDS_PER_DAY)
    what = (last_action_key or "engagement action").replace("_", " ")
    tail = f"no {what} for {_days(silent)}"
    if expected_gap_days is not None and not math.isnan(expected_gap_days):
        gap = max(1, round(expected_gap_days))
        tail += ", usually every day" if gap == 1 else f", usually every {gap}"
    return f"{head}; {tail}"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def renewal_risk_rows(customers: Iterable[Customer], *, now: datetime | None = None) -> list:
    """Customers of one page with ``reason`` set and their notes prefetched: a fixed number
    of queries whatever the page size (last-action types, notes with authors)."""
    now = now or timezone.now()
    page = list(customers)
    keys = last_action_types(page)
    prefetch_related_objects(
        page, Prefetch("notes", queryset=CustomerNote.objects.select_related("author"))
    )
    for c in page:
        e = c.engagement
        c.reason = risk_reason(
            score=c.score,
            trend=e.trend_30d,
            last_action_at=c.score_state.last_engagement_at,
            last_action_key=keys.get(c.pk),
            expected_gap_days=c.score_state.expected_gap_days,
            signup=c.signup_date,
            now=now,
        )
        c.renewal_in_days = (c.renewal_date - timezone.localdate(now)).days
    return page

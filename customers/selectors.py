"""Reading customers with their engagement state: the queries screens, API and exports share.

The 0–100 score is never stored (see ``customers/engine/decay.py``): it is computed live from
the decay sum in ``ScoreState``. Two consequences shape every read here:

- to *show* a score, annotate it with ``score_expression`` (``customers_with_state``);
- to *filter or sort* by score, use the decay sum, which orders customers exactly like the
  score at any instant and has an index: ``score_band_q`` turns a score band into a decay-sum
  range, and ordering by ``score_state__decay_sum`` is ordering by score.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet
from django.utils import timezone

from customers.engagement import EngineConfig, engine_config, score_expression
from customers.engine import decay
from customers.models import Customer

SCORE_ORDER_FIELD = "score_state__decay_sum"


def customers_with_state(
    queryset: QuerySet[Customer] | None = None,
    *,
    now: datetime | None = None,
    config: EngineConfig | None = None,
) -> QuerySet[Customer]:
    """Customers joined to their engine rows (one query, no N+1), with the live ``score``.

    ``customer.engagement`` (stage, P(still engaged), recency inputs, trend) and
    ``customer.score_state`` come from the same row; ``customer.score`` is 0–100 at ``now``.
    """
    queryset = Customer.objects.all() if queryset is None else queryset
    return queryset.select_related("engagement", "score_state", "owner").annotate(
        score=score_expression(now or timezone.now(), config or engine_config())
    )


def score_band_q(
    low: float | None,
    high: float | None,
    *,
    now: datetime | None = None,
    config: EngineConfig | None = None,
    prefix: str = "",
) -> Q:
    """A filter for customers whose score at ``now`` lies in [low, high] (None = open).

    Index-friendly: a range on the stored decay sum, not a computed expression. ``prefix``
    is the path to the customer from the queried model (e.g. ``"customer__"``).
    """
    config = config or engine_config()
    low_sum, high_sum = decay.score_bounds_to_decay_sum(
        low,
        high,
        (now or timezone.now()).timestamp(),
        epoch=config.epoch,
        half_life_days=config.half_life_days,
        half_point=config.half_point,
    )
    q = Q()
    if low_sum is not None:
        q &= Q(**{f"{prefix}{SCORE_ORDER_FIELD}__gte": low_sum})
    if high_sum is not None:
        q &= Q(**{f"{prefix}{SCORE_ORDER_FIELD}__lte": high_sum})
    return q

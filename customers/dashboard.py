"""What the dashboard shows: summary rows computed off the request path, and small reads.

A request reads (a handful of primary-key or small-index reads, the same at a thousand or a
million customers):

- the newest ``DashboardSummary`` row: customers per stage, the stage flow over 30 days,
  the score histogram, "disengaging now" (count, revenue, the biggest accounts' ids);
- the biggest disengaging accounts themselves (by id);
- stage sizes over 90 days from ``StageDaily`` (one row per stage per day);
- the last job runs.

``dashboard_summary_refresh`` computes the summary — the whole-table aggregations, once per
refresh instead of once per request: a ``GROUP BY`` over the engagement stage index, the
stage-change rows of the last 30 days (index on ``changed_at``), one pass over the decay-sum
index for the live score histogram, and the partial index of customers who entered cooling
or at risk (``engagement_slipping_since_idx``). It runs from the screens' beat task
(``success.tasks.summaries_refresh_task``, every minute, when an engine job has finished
since the last summary or it is older than ``MAX_AGE``).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.safestring import SafeString

from customers.charts import STAGE_COLORS, figure_div_data
from customers.engagement import engine_config
from customers.models import (
    Customer,
    DashboardSummary,
    Engagement,
    JobRun,
    Stage,
    StageChange,
    StageDaily,
)
from customers.selectors import score_band_q

FLOW_DAYS = 30
TREND_DAYS = 90
DISENGAGING_DAYS = 7
DISENGAGING_STAGES = (Stage.COOLING, Stage.AT_RISK)
DISENGAGING_TOP = 8
SCORE_BINS = np.linspace(0, 100, 21)  # 5-point buckets
STAGE_LABELS = dict(Stage.choices)
MAX_AGE = timedelta(minutes=10)
SUMMARIES_KEPT = 50


def stage_counts() -> dict[str, int]:
    """Customers per stage now, in the stages' natural order (zeros included)."""
    found = dict(
        Engagement.objects.order_by()
        .values_list("stage")
        .annotate(n=Count("pk"))
        .values_list("stage", "n")
    )
    return {value: found.get(value, 0) for value in Stage.values}


def stage_flows(*, now: datetime, days: int = FLOW_DAYS) -> list[tuple[str, str, int]]:
    """(from stage, to stage, customers) moves in the last ``days`` days; first stagings
    (no from stage) left out — they are arrivals, not moves."""
    rows = (
        StageChange.objects.filter(changed_at__gte=now - timedelta(days=days))
        .exclude(from_stage="")
        .order_by()
        .values_list("from_stage", "to_stage")
        .annotate(n=Count("pk"))
    )
    return sorted(((f, t, n) for f, t, n in rows), key=lambda r: -r[2])


def score_counts(*, now: datetime, edges=SCORE_BINS) -> list[int]:
    """Customers per score bin at ``now`` (bins half-open, the last one closed), in one pass:
    each bin is a decay-sum range (``score_band_q``), counted with ``FILTER``."""
    config = engine_config()
    bands = list(itertools.pairwise(float(e) for e in edges))
    aggregates = {}
    for i, (low, high) in enumerate(bands):
        q = score_band_q(low, None, now=now, config=config)
        if i < len(bands) - 1:
            q &= ~score_band_q(high, None, now=now, config=config)
        aggregates[f"b{i}"] = Count("pk", filter=q)
    counts = Customer.objects.filter(score_state__isnull=False).order_by().aggregate(**aggregates)
    return [counts[f"b{i}"] for i in range(len(bands))]


def disengaging_query(*, now: datetime, days: int = DISENGAGING_DAYS):
    """Customers who entered cooling or at risk in the last ``days`` days and are still there
    (the partial index ``engagement_slipping_since_idx`` finds them)."""
    return Customer.objects.filter(
        engagement__stage__in=DISENGAGING_STAGES,
        engagement__stage_since__gte=now - timedelta(days=days),
    )


def dashboard_summary_compute(*, now: datetime | None = None) -> DashboardSummary:
    """The dashboard's whole-table figures at ``now`` (unsaved)."""
    now = now or timezone.now()
    started = time.perf_counter()
    counts = stage_counts()
    current = disengaging_query(now=now)
    totals = current.order_by().aggregate(n=Count("pk"), revenue=Sum("lifetime_revenue"))
    top = list(
        current.order_by("-lifetime_revenue", "pk").values_list("pk", flat=True)[:DISENGAGING_TOP]
    )
    return DashboardSummary(
        computed_at=now,
        customers=sum(counts.values()),
        stage_counts=counts,
        flows=[list(row) for row in stage_flows(now=now)],
        flow_days=FLOW_DAYS,
        score_edges=[float(e) for e in SCORE_BINS],
        score_counts=score_counts(now=now),
        disengaging_customers=totals["n"] or 0,
        disengaging_revenue=totals["revenue"] or Decimal(0),
        disengaging_top=top,
        disengaging_days=DISENGAGING_DAYS,
        seconds=round(time.perf_counter() - started, 3),
    )


def dashboard_summary_refresh(*, now: datetime | None = None) -> DashboardSummary:
    """Compute and store a new summary row; older rows beyond the last ``SUMMARIES_KEPT``
    are deleted. Call it after anything that moves stages or scores (engine jobs); the
    screens' beat task does, every minute."""
    summary = dashboard_summary_compute(now=now)
    summary.save()
    stale = DashboardSummary.objects.order_by("-id").values_list("id", flat=True)[
        SUMMARIES_KEPT : SUMMARIES_KEPT + 1
    ]
    if stale:
        DashboardSummary.objects.filter(id__lte=stale[0]).delete()
    return summary


def dashboard_summary_latest() -> DashboardSummary | None:
    return DashboardSummary.objects.order_by("-id").first()


def dashboard_summary_due(*, now: datetime | None = None) -> bool:
    """Whether a new summary is needed: none yet, older than ``MAX_AGE``, or an engine job
    finished since the newest one was computed."""
    now = now or timezone.now()
    latest = DashboardSummary.objects.order_by("-id").values_list("computed_at", flat=True)
    last = latest.first()
    if last is None or now - last >= MAX_AGE:
        return True
    return JobRun.objects.filter(finished_at__gt=last, customers_processed__gt=0).exists()


@dataclass(frozen=True)
class ScoreHistogram:
    as_of: datetime | None
    counts: list[int]
    edges: list[float]

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Disengaging:
    customers: int
    revenue: Decimal
    top: list[Customer]


def disengaging_top(ids: list[int]) -> list[Customer]:
    """The summary's biggest disengaging accounts, in its order (one query by primary key)."""
    found = Customer.objects.select_related("engagement").in_bulk(ids)
    return [found[i] for i in ids if i in found]


def stage_trend(*, today: date, days: int = TREND_DAYS) -> dict[str, list[tuple[date, int]]]:
    """Customers per stage per day over the last ``days`` days (from ``StageDaily``)."""
    series: dict[str, list[tuple[date, int]]] = {value: [] for value in Stage.values}
    rows = StageDaily.objects.filter(day__gte=today - timedelta(days=days)).order_by("day")
    for day, stage, n in rows.values_list("day", "stage", "customers"):
        series.setdefault(stage, []).append((day, n))
    return series


def recent_job_runs(limit: int = 6) -> list[JobRun]:
    return list(JobRun.objects.order_by("-started_at", "-id")[:limit])


# --- figures -----------------------------------------------------------------------------


def stage_bar_figure(counts: dict[str, int]) -> SafeString:
    bar = {
        "type": "bar",
        "x": [STAGE_LABELS[s] for s in counts],
        "y": list(counts.values()),
        "marker": {"color": [STAGE_COLORS[s] for s in counts]},
        "text": [f"{n:,}" for n in counts.values()],
        "textposition": "outside",
        "cliponaxis": False,
        "hovertemplate": "%{x}: %{y:,} customers<extra></extra>",
    }
    layout = {"yaxis": {"showgrid": True, "gridcolor": "#eef0f4", "rangemode": "tozero"}}
    return figure_div_data([bar], layout, height=300)


def stage_flow_figure(flows: list[tuple[str, str, int]]) -> SafeString | None:
    if not flows:
        return None
    stages = Stage.values
    # Left column: stage before the move; right column: stage after it.
    index = {s: i for i, s in enumerate(stages)}
    sankey = {
        "type": "sankey",
        "arrangement": "snap",
        "node": {
            "label": [STAGE_LABELS[s] for s in stages] * 2,
            "color": [STAGE_COLORS[s] for s in stages] * 2,
            "pad": 14,
            "thickness": 14,
        },
        "link": {
            "source": [index[f] for f, _, _ in flows],
            "target": [len(stages) + index[t] for _, t, _ in flows],
            "value": [n for _, _, n in flows],
            "color": "rgba(120,130,150,0.25)",
            "hovertemplate": "%{source.label} → %{target.label}: %{value:,}<extra></extra>",
        },
    }
    return figure_div_data([sankey], height=320)


def score_histogram_figure(histogram: ScoreHistogram) -> SafeString | None:
    if not histogram.total:
        return None
    edges = histogram.edges
    bar = {
        "type": "bar",
        "x": [(a + b) / 2 for a, b in itertools.pairwise(edges)],
        "y": histogram.counts,
        "width": [b - a for a, b in itertools.pairwise(edges)],
        "marker": {"color": "#2f6fdb", "line": {"color": "#fff", "width": 1}},
        "customdata": [f"{a:.0f}–{b:.0f}" for a, b in itertools.pairwise(edges)],
        "hovertemplate": "score %{customdata}: %{y:,} customers<extra></extra>",
    }
    layout = {
        "xaxis": {"title": {"text": "score"}, "range": [0, 100]},
        "yaxis": {"title": {"text": "customers"}, "gridcolor": "#eef0f4"},
    }
    return figure_div_data([bar], layout, height=300)


def stage_trend_figure(series: dict[str, list[tuple[date, int]]]) -> SafeString | None:
    if not any(series.values()):
        return None
    data = [
        {
            "type": "scatter",
            "x": [d for d, _ in points],
            "y": [n for _, n in points],
            "name": STAGE_LABELS.get(stage, stage),
            "mode": "lines",
            "line": {"color": STAGE_COLORS.get(stage, "#888"), "width": 2},
            "hovertemplate": "%{x|%b %d}: %{y:,}<extra>"
            + STAGE_LABELS.get(stage, stage)
            + "</extra>",
        }
        for stage, points in series.items()
        if points
    ]
    layout = {"yaxis": {"gridcolor": "#eef0f4", "rangemode": "tozero"}}
    return figure_div_data(data, layout, height=320)


def dashboard_context(*, now: datetime | None = None) -> dict:
    """Everything the dashboard template needs: the newest summary row plus small reads.

    Without any summary yet (a fresh install before beat's first run) one is computed here,
    once."""
    now = now or timezone.now()
    summary = dashboard_summary_latest() or dashboard_summary_refresh(now=now)
    counts = {value: summary.stage_counts.get(value, 0) for value in Stage.values}
    flows = [(f, t, n) for f, t, n in summary.flows]
    histogram = ScoreHistogram(summary.computed_at, summary.score_counts, summary.score_edges)
    return {
        "summary": summary,
        "customer_total": summary.customers,
        "stage_counts": [(STAGE_LABELS[s], s, n) for s, n in counts.items()],
        "stage_bar": stage_bar_figure(counts),
        "flow_chart": stage_flow_figure(flows),
        "flow_moves": sum(n for _, _, n in flows),
        "flow_days": summary.flow_days,
        "histogram": histogram,
        "histogram_chart": score_histogram_figure(histogram),
        "disengaging": Disengaging(
            summary.disengaging_customers,
            summary.disengaging_revenue,
            disengaging_top(summary.disengaging_top),
        ),
        "disengaging_days": summary.disengaging_days,
        "trend_chart": stage_trend_figure(stage_trend(today=now.date())),
        "trend_days": TREND_DAYS,
        "job_runs": recent_job_runs(),
    }

"""What the dashboard shows, read from summary rows and indexes — never from touchpoints.

Sources, chosen so the page costs about the same at a thousand or a million customers:

- customers per stage: one ``GROUP BY`` on the engagement table's stage index;
- stage flow: stage-change rows of the last 30 days (index on ``changed_at``);
- score distribution: the latest nightly snapshot (about a thousand packed rows for a
  million customers), histogrammed with numpy and cached for the snapshot's day;
- disengaging now: customers whose *current* stage is cooling or at risk and began this week;
- stage sizes over time: ``StageDaily`` (one row per stage per day);
- last job runs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import plotly.graph_objects as go
from django.core.cache import cache
from django.db.models import Count, Max, Sum
from django.utils import timezone
from django.utils.safestring import SafeString

from customers.charts import STAGE_COLORS, figure_div
from customers.engine import snapshots
from customers.models import (
    Customer,
    Engagement,
    JobRun,
    ScoreSnapshot,
    Stage,
    StageChange,
    StageDaily,
)

FLOW_DAYS = 30
TREND_DAYS = 90
DISENGAGING_DAYS = 7
DISENGAGING_STAGES = (Stage.COOLING, Stage.AT_RISK)
SCORE_BINS = np.linspace(0, 100, 21)  # 5-point buckets
STAGE_LABELS = dict(Stage.choices)


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


@dataclass(frozen=True)
class ScoreHistogram:
    day: date | None
    counts: list[int]
    edges: list[float]

    @property
    def total(self) -> int:
        return sum(self.counts)


def snapshot_scores(day: date, *, blocks: list[int] | None = None) -> np.ndarray:
    """Every customer's score in ``day``'s snapshot (NaN-free), optionally some blocks only."""
    rows = ScoreSnapshot.objects.filter(day=day)
    if blocks is not None:
        rows = rows.filter(block__in=blocks)
    parts = [snapshots.unpack_scores(blob) for blob in rows.values_list("scores", flat=True)]
    if not parts:
        return np.zeros(0)
    scores = np.concatenate(parts)
    return scores[~np.isnan(scores)]


def score_histogram() -> ScoreHistogram:
    """Score distribution from the latest snapshot; cached for that snapshot's day."""
    latest = ScoreSnapshot.objects.aggregate(day=Max("day"))["day"]
    if latest is None:
        return ScoreHistogram(None, [], SCORE_BINS.tolist())
    key = f"dashboard:score-histogram:{latest.isoformat()}"
    cached = cache.get(key)
    if cached is None:
        counts, _ = np.histogram(snapshot_scores(latest), bins=SCORE_BINS)
        cached = counts.tolist()
        cache.set(key, cached, 24 * 3600)
    return ScoreHistogram(latest, cached, SCORE_BINS.tolist())


@dataclass(frozen=True)
class Disengaging:
    customers: int
    revenue: Decimal
    top: list[Customer]


def disengaging_now(*, now: datetime, days: int = DISENGAGING_DAYS, top: int = 8) -> Disengaging:
    """Customers who entered cooling or at risk in the last ``days`` days and are still
    there, with their lifetime revenue: the value slipping away right now."""
    current = Customer.objects.filter(
        engagement__stage__in=DISENGAGING_STAGES,
        engagement__stage_since__gte=now - timedelta(days=days),
    )
    totals = current.order_by().aggregate(n=Count("pk"), revenue=Sum("lifetime_revenue"))
    biggest = list(current.select_related("engagement").order_by("-lifetime_revenue", "pk")[:top])
    return Disengaging(totals["n"] or 0, totals["revenue"] or Decimal(0), biggest)


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
    fig = go.Figure(
        go.Bar(
            x=[STAGE_LABELS[s] for s in counts],
            y=list(counts.values()),
            marker_color=[STAGE_COLORS[s] for s in counts],
            text=[f"{n:,}" for n in counts.values()],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y:,} customers<extra></extra>",
        )
    )
    fig.update_yaxes(showgrid=True, gridcolor="#eef0f4", rangemode="tozero")
    return figure_div(fig, height=300)


def stage_flow_figure(flows: list[tuple[str, str, int]]) -> SafeString | None:
    if not flows:
        return None
    stages = Stage.values
    # Left column: stage before the move; right column: stage after it.
    labels = [STAGE_LABELS[s] for s in stages] * 2
    colors = [STAGE_COLORS[s] for s in stages] * 2
    index = {s: i for i, s in enumerate(stages)}
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "color": colors, "pad": 14, "thickness": 14},
            link={
                "source": [index[f] for f, _, _ in flows],
                "target": [len(stages) + index[t] for _, t, _ in flows],
                "value": [n for _, _, n in flows],
                "color": "rgba(120,130,150,0.25)",
                "hovertemplate": "%{source.label} → %{target.label}: %{value:,}<extra></extra>",
            },
        )
    )
    return figure_div(fig, height=320)


def score_histogram_figure(histogram: ScoreHistogram) -> SafeString | None:
    if not histogram.total:
        return None
    edges = histogram.edges
    fig = go.Figure(
        go.Bar(
            x=[(a + b) / 2 for a, b in itertools.pairwise(edges)],
            y=histogram.counts,
            width=[b - a for a, b in itertools.pairwise(edges)],
            marker_color="#2f6fdb",
            marker_line={"color": "#fff", "width": 1},
            customdata=[f"{a:.0f}–{b:.0f}" for a, b in itertools.pairwise(edges)],
            hovertemplate="score %{customdata}: %{y:,} customers<extra></extra>",
        )
    )
    fig.update_xaxes(title_text="score", range=[0, 100])
    fig.update_yaxes(title_text="customers", gridcolor="#eef0f4")
    return figure_div(fig, height=300)


def stage_trend_figure(series: dict[str, list[tuple[date, int]]]) -> SafeString | None:
    if not any(series.values()):
        return None
    fig = go.Figure()
    for stage, points in series.items():
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[d for d, _ in points],
                y=[n for _, n in points],
                name=STAGE_LABELS.get(stage, stage),
                mode="lines",
                line={"color": STAGE_COLORS.get(stage, "#888"), "width": 2},
                hovertemplate="%{x|%b %d}: %{y:,}<extra>"
                + STAGE_LABELS.get(stage, stage)
                + "</extra>",
            )
        )
    fig.update_yaxes(gridcolor="#eef0f4", rangemode="tozero")
    return figure_div(fig, height=320)


def dashboard_context(*, now: datetime | None = None) -> dict:
    """Everything the dashboard template needs (a handful of indexed queries)."""
    now = now or timezone.now()
    counts = stage_counts()
    flows = stage_flows(now=now)
    histogram = score_histogram()
    trend = stage_trend(today=now.date())
    return {
        "customer_total": sum(counts.values()),
        "stage_counts": [(STAGE_LABELS[s], s, n) for s, n in counts.items()],
        "stage_bar": stage_bar_figure(counts),
        "flow_chart": stage_flow_figure(flows),
        "flow_moves": sum(n for _, _, n in flows),
        "flow_days": FLOW_DAYS,
        "histogram": histogram,
        "histogram_chart": score_histogram_figure(histogram),
        "disengaging": disengaging_now(now=now),
        "disengaging_days": DISENGAGING_DAYS,
        "trend_chart": stage_trend_figure(trend),
        "trend_days": TREND_DAYS,
        "job_runs": recent_job_runs(),
    }

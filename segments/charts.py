"""Segment charts: size trend, stage mix, score distribution (one or two segments)."""

from __future__ import annotations

import itertools

import plotly.graph_objects as go
from django.utils.safestring import SafeString

from customers.charts import STAGE_COLORS, figure_div
from customers.models import Stage
from segments.models import SegmentSize
from segments.selectors import SCORE_EDGES

STAGE_LABELS = dict(Stage.choices)
PAIR_COLORS = ("#2f6fdb", "#e6ab02")


def size_trend_figure(series: dict[str, list[SegmentSize]]) -> SafeString | None:
    if not any(series.values()):
        return None
    fig = go.Figure()
    for i, (name, sizes) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=[s.day for s in sizes],
                y=[s.customers for s in sizes],
                name=name,
                mode="lines+markers",
                line={"width": 2, "color": PAIR_COLORS[i] if len(series) <= 2 else None},
                hovertemplate="%{x|%b %d}: %{y:,}<extra>" + name + "</extra>",
            )
        )
    fig.update_yaxes(gridcolor="#eef0f4", rangemode="tozero")
    return figure_div(fig, height=260)


def stage_mix_figure(mixes: dict[str, dict[str, int]]) -> SafeString:
    fig = go.Figure()
    single = len(mixes) == 1
    for i, (name, mix) in enumerate(mixes.items()):
        total = sum(mix.values()) or 1
        fig.add_trace(
            go.Bar(
                x=[STAGE_LABELS[s] for s in mix],
                y=[100 * n / total for n in mix.values()],
                customdata=list(mix.values()),
                name=name,
                marker_color=[STAGE_COLORS[s] for s in mix] if single else PAIR_COLORS[i],
                hovertemplate="%{x}: %{y:.1f}% (%{customdata:,})<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(barmode="group", showlegend=not single)
    fig.update_yaxes(title_text="% of segment", gridcolor="#eef0f4")
    return figure_div(fig, height=280)


def score_distribution_figure(distributions: dict[str, list[int]]) -> SafeString:
    fig = go.Figure()
    labels = [f"{a}–{b}" for a, b in itertools.pairwise(SCORE_EDGES)]
    for i, (name, counts) in enumerate(distributions.items()):
        total = sum(counts) or 1
        fig.add_trace(
            go.Bar(
                x=labels,
                y=[100 * n / total for n in counts],
                customdata=counts,
                name=name,
                marker_color=PAIR_COLORS[i % 2],
                hovertemplate="score %{x}: %{y:.1f}% (%{customdata:,})<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(barmode="group", showlegend=len(distributions) > 1)
    fig.update_yaxes(title_text="% of segment", gridcolor="#eef0f4")
    return figure_div(fig, height=280)

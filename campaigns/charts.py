"""Plotly figures for the plan screens (rendered server-side with ``figure_div``)."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from django.utils.safestring import SafeString

from campaigns.results import Comparison, Curve, Moment
from customers.charts import figure_div

TREATMENT_COLOR = "#2f6fdb"
CONTROL_COLOR = "#9aa5b8"
GRID = "#eef0f4"


def _pct(values) -> list[float | None]:
    return [None if v is None or math.isnan(v) else v * 100 for v in values]


def cumulative_figure(curve: Curve) -> SafeString | None:
    """Cumulative re-engaged share by days since enrollment, treatment vs control."""
    if all(v is None or math.isnan(v) for v in curve.treatment + curve.control):
        return None
    fig = go.Figure()
    for name, values, color, dash in (
        ("Treatment", curve.treatment, TREATMENT_COLOR, "solid"),
        ("Control (held out)", curve.control, CONTROL_COLOR, "dash"),
    ):
        fig.add_trace(
            go.Scatter(
                x=curve.days,
                y=_pct(values),
                mode="lines",
                name=name,
                line={"color": color, "width": 2.5, "dash": dash, "shape": "hv"},
                hovertemplate="day %{x}: %{y:.1f}%<extra>" + name + "</extra>",
            )
        )
    fig.update_xaxes(title="Days since enrollment", gridcolor=GRID, rangemode="tozero")
    fig.update_yaxes(title="Re-engaged (cumulative %)", gridcolor=GRID, rangemode="tozero")
    return figure_div(fig, height=320)


def lift_figure(rows: list[Comparison]) -> SafeString | None:
    """Lift with its 95% CI per row (plan, steps, segments): a forest plot in points."""
    rows = [r for r in rows if r.lift is not None]
    if not rows:
        return None
    labels = [r.label for r in rows][::-1]
    lifts = [r.lift * 100 for r in rows][::-1]
    plus = [(r.upper - r.lift) * 100 for r in rows][::-1]
    minus = [(r.lift - r.lower) * 100 for r in rows][::-1]
    colors = [
        "#1b9e77" if r.lower > 0 else "#d95f02" if r.upper < 0 else CONTROL_COLOR for r in rows
    ][::-1]
    fig = go.Figure(
        go.Scatter(
            x=lifts,
            y=labels,
            mode="markers",
            marker={"size": 11, "color": colors},
            error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
            hovertemplate="%{y}: %{x:+.1f} pts<extra></extra>",
        )
    )
    fig.add_vline(x=0, line={"color": "#4d4d4d", "width": 1})
    fig.update_xaxes(title="Lift, points (95% CI)", gridcolor=GRID, zeroline=False)
    fig.update_layout(showlegend=False, margin={"l": 160})
    return figure_div(fig, height=90 + 42 * len(rows))


def best_moment_figure(moment: Moment) -> SafeString | None:
    """Re-engagement rate by days since the last action when the first step went out, with
    the point where it starts to fall fastest."""
    bm = moment.treatment
    if np.all(np.isnan(bm.rate)):
        return None
    centres = bm.edges + bm.width / 2
    keep = ~np.isnan(bm.rate)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=centres[keep],
            y=bm.rate[keep] * 100,
            width=bm.width * 0.85,
            name="Treatment rate",
            marker_color="#c9d8f5",
            customdata=bm.counts[keep],
            hovertemplate="%{x:.0f} days: %{y:.1f}% of %{customdata}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=centres[keep],
            y=bm.smoothed[keep] * 100,
            mode="lines+markers",
            name="Smoothed",
            line={"color": TREATMENT_COLOR, "width": 2.5},
        )
    )
    ctrl_keep = ~np.isnan(moment.control_rate)
    if ctrl_keep.any():
        fig.add_trace(
            go.Scatter(
                x=centres[ctrl_keep],
                y=moment.control_rate[ctrl_keep] * 100,
                mode="markers",
                name="Control rate",
                marker={"color": CONTROL_COLOR, "size": 8, "symbol": "diamond"},
            )
        )
    if bm.fall_at is not None:
        fig.add_vline(
            x=bm.fall_at,
            line={"color": "#d95f02", "width": 2, "dash": "dash"},
            annotation_text=f"falls fastest from day {int(bm.fall_at)}",
            annotation_position="top right",
        )
    fig.update_xaxes(title="Days since last engagement action at the first step", gridcolor=GRID)
    fig.update_yaxes(title="Re-engaged %", gridcolor=GRID, rangemode="tozero")
    return figure_div(fig, height=300)

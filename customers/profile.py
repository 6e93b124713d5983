"""One customer's page: history, touchpoints by channel, actions and their effect.

Reads only this customer's rows, each through an index: the snapshot block holding their id
(two bytes per day cut out in SQL, not the whole packed block), their stage changes, and
their touchpoints on the (customer, time) index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from django.db.models import BinaryField, Count, Value
from django.db.models.functions import Substr
from django.utils.safestring import SafeString

from customers.actions import ActionEffect, TouchRow, action_effects
from customers.charts import STAGE_COLORS, figure_div_data
from customers.engine import snapshots
from customers.models import Channel, Customer, ScoreSnapshot, Stage, StageChange, Touchpoint

HISTORY_DAYS = 180
TIMELINE_DAYS = 365
TIMELINE_LIMIT = 3_000
CHANNEL_LABELS = dict(Channel.choices)
STAGE_LABELS = dict(Stage.choices)
CHANNEL_COLORS = {
    "email": "#2f6fdb",
    "web": "#7b61c9",
    "product": "#1b9e77",
    "social": "#e7298a",
    "phone": "#d95f02",
    "in_person": "#a6761d",
    "support": "#e6ab02",
    "billing": "#4d4d4d",
}


@dataclass(frozen=True)
class HistoryPoint:
    day: date
    score: float | None
    p_alive: float | None


def score_history(customer_id: int, *, today: date, days: int = HISTORY_DAYS) -> list[HistoryPoint]:
    """Daily score and P(still engaged) from the snapshots (one indexed query)."""
    slot = customer_id % snapshots.BLOCK_SIZE
    rows = (
        ScoreSnapshot.objects.filter(
            block=snapshots.block_of(customer_id), day__gte=today - timedelta(days=days)
        )
        .order_by("day")
        .values_list(
            "day",
            Substr("scores", Value(slot * 2 + 1), Value(2), output_field=BinaryField()),
            Substr("p_alive", Value(slot * 2 + 1), Value(2), output_field=BinaryField()),
        )
    )
    points = []
    for day, score_bytes, p_bytes in rows:
        score = snapshots.unpack_scores(bytes(score_bytes))
        p_alive = snapshots.unpack_p_alive(bytes(p_bytes))
        if len(score) == 0 or np.isnan(score[0]):
            continue
        p = None if len(p_alive) == 0 or np.isnan(p_alive[0]) else float(p_alive[0])
        points.append(HistoryPoint(day, float(score[0]), p))
    return points


def stage_changes(customer: Customer) -> list[StageChange]:
    return list(customer.stage_changes.order_by("changed_at", "pk"))


def channel_counts(customer: Customer) -> list[tuple[str, str, int]]:
    """(channel, label, touchpoints) over the customer's whole history, most first."""
    rows = (
        Touchpoint.objects.filter(customer=customer)
        .order_by()
        .values_list("type__channel")
        .annotate(n=Count("pk"))
    )
    return sorted(((c, CHANNEL_LABELS.get(c, c), n) for c, n in rows), key=lambda r: -r[2])


def recent_touchpoints(
    customer: Customer, *, now: datetime, days: int = TIMELINE_DAYS, limit: int = TIMELINE_LIMIT
) -> list[TouchRow]:
    """The customer's touchpoints of the last ``days`` days, newest first (capped)."""
    rows = (
        Touchpoint.objects.filter(customer=customer, occurred_at__gte=now - timedelta(days=days))
        .order_by("-occurred_at")
        .values_list(
            "pk",
            "occurred_at",
            "type__key",
            "type__label",
            "type__channel",
            "type__counts_as_engagement",
            "source",
        )[:limit]
    )
    return [TouchRow(*row) for row in rows]


@dataclass
class CustomerProfile:
    history: list[HistoryPoint]
    changes: list[StageChange]
    channels: list[tuple[str, str, int]]
    touchpoints: list[TouchRow]
    effects: list[ActionEffect]
    enrollments: list = field(default_factory=list)  # campaigns.Enrollment, executions prefetched


def plan_enrollments(customer: Customer) -> list:
    """The customer's plan enrollments, newest first, each with every step execution —
    performed, held out (control arm), suppressed or failed (two queries)."""
    from campaigns.selectors import customer_enrollments

    return list(customer_enrollments(customer))


def customer_profile(customer: Customer, *, now: datetime) -> CustomerProfile:
    """Everything below the header of the customer page (five indexed queries)."""
    touchpoints = recent_touchpoints(customer, now=now)
    return CustomerProfile(
        history=score_history(customer.pk, today=now.date()),
        changes=stage_changes(customer),
        channels=channel_counts(customer),
        touchpoints=touchpoints,
        effects=action_effects(touchpoints, now=now),
        enrollments=plan_enrollments(customer),
    )


# --- figures -----------------------------------------------------------------------------


def score_gauge_figure(score: float) -> SafeString:
    gauge = {
        "type": "indicator",
        "mode": "gauge",  # the number is shown in HTML below: plotly mispositions it on resize
        "value": round(score, 1),
        "gauge": {
            "axis": {"range": [0, 100]},
            "bar": {"color": "#2f6fdb", "thickness": 0.3},
            "steps": [
                {"range": [0, 25], "color": "#fbe9e5"},
                {"range": [25, 50], "color": "#fdf3dc"},
                {"range": [50, 100], "color": "#e6f4ec"},
            ],
        },
    }
    return figure_div_data([gauge], height=200)


def score_history_figure(history: list[HistoryPoint]) -> SafeString | None:
    if not history:
        return None
    data = [
        {
            "type": "scatter",
            "x": [p.day for p in history],
            "y": [p.score for p in history],
            "mode": "lines",
            "name": "score",
            "line": {"color": "#2f6fdb", "width": 2},
            "hovertemplate": "%{x|%b %d}: %{y:.1f}<extra>score</extra>",
        }
    ]
    p_alive = [p for p in history if p.p_alive is not None]
    if p_alive:
        data.append(
            {
                "type": "scatter",
                "x": [p.day for p in p_alive],
                "y": [p.p_alive * 100 for p in p_alive],
                "mode": "lines",
                "name": "P(still engaged) %",
                "line": {"color": "#1b9e77", "width": 1.5, "dash": "dot"},
                "hovertemplate": "%{x|%b %d}: %{y:.0f}%<extra>P(still engaged)</extra>",
            }
        )
    return figure_div_data(data, {"yaxis": {"range": [0, 100], "gridcolor": "#eef0f4"}}, height=260)


def stage_timeline_figure(changes: list[StageChange], *, now: datetime) -> SafeString | None:
    if not changes:
        return None
    order = [Stage.LAPSED, Stage.AT_RISK, Stage.COOLING, Stage.NEW, Stage.REENGAGED, Stage.ENGAGED]
    trace = {
        "type": "scatter",
        "x": [c.changed_at for c in changes] + [now],
        "y": [STAGE_LABELS[c.to_stage] for c in changes] + [STAGE_LABELS[changes[-1].to_stage]],
        "mode": "lines+markers",
        "line": {"shape": "hv", "color": "#9aa3b5", "width": 2},
        "marker": {
            "size": [10] * len(changes) + [0],
            "color": [STAGE_COLORS[c.to_stage] for c in changes] + ["#9aa3b5"],
        },
        "hovertemplate": "%{x|%b %d, %Y}: %{y}<extra></extra>",
    }
    layout = {
        "yaxis": {
            "categoryorder": "array",
            "categoryarray": [STAGE_LABELS[s] for s in order],
            "gridcolor": "#eef0f4",
        },
        "showlegend": False,
    }
    return figure_div_data([trace], layout, height=240)


def touchpoint_timeline_figure(rows: list[TouchRow]) -> SafeString | None:
    if not rows:
        return None
    by_channel: dict[str, list[TouchRow]] = {}
    for row in rows:
        by_channel.setdefault(row.channel, []).append(row)
    data = []
    for channel, items in sorted(by_channel.items()):
        label = CHANNEL_LABELS.get(channel, channel)
        data.append(
            {
                "type": "scatter",
                "x": [r.occurred_at for r in items],
                "y": [label] * len(items),
                "mode": "markers",
                "name": label,
                "marker": {
                    "color": CHANNEL_COLORS.get(channel, "#888"),
                    "size": 9,
                    "opacity": 0.7,
                    "symbol": [
                        "diamond" if not r.counts_as_engagement else "circle" for r in items
                    ],
                },
                "customdata": [r.type_label for r in items],
                "hovertemplate": "%{x|%b %d, %Y %H:%M}: %{customdata}<extra></extra>",
            }
        )
    layout = {"showlegend": False, "xaxis": {"gridcolor": "#eef0f4"}}
    return figure_div_data(data, layout, height=60 + 34 * len(by_channel))

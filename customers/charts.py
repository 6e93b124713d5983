"""Plotly figures rendered server-side to a ``<div>`` for templates.

plotly.js is served locally (``static/vendor/plotly.min.js``, included once by
``templates/base.html`` on pages that set ``{% block charts %}``): no CDN, the site works
offline. One calm look for every chart: the same font, margins and stage colours.
"""

from __future__ import annotations

import functools

import plotly.graph_objects as go
import plotly.io as pio
from django.utils.safestring import SafeString, mark_safe

from customers.models import Stage

STAGE_COLORS = {
    Stage.NEW: "#8da0cb",
    Stage.ENGAGED: "#1b9e77",
    Stage.REENGAGED: "#66a61e",
    Stage.COOLING: "#e6ab02",
    Stage.AT_RISK: "#d95f02",
    Stage.LAPSED: "#a6761d",
}


def styled(fig: go.Figure, *, height: int = 320) -> go.Figure:
    """Apply the house layout (font, margins, transparent background)."""
    fig.update_layout(
        height=height,
        margin={"l": 48, "r": 16, "t": 32, "b": 40},
        font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13},
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


CONFIG = {"displaylogo": False, "responsive": True}
HOUSE_LAYOUT = {
    "margin": {"l": 48, "r": 16, "t": 32, "b": 40},
    "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "legend": {"orientation": "h", "y": -0.2},
}


@functools.cache
def _template() -> dict:
    """Plotly's default template as plain data (what ``go.Figure`` embeds), built once."""
    return pio.templates[pio.templates.default].to_plotly_json()


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def figure_div_data(
    data: list[dict], layout: dict | None = None, *, height: int = 320
) -> SafeString:
    """Like ``figure_div``, for a figure written as plain plotly.js data (``{"type":
    "scatter", …}``) and layout: same look and HTML, without plotly's object model, whose
    validation and deep copies cost ~20 ms per chart — most of a page's time where a page
    draws four charts per request (customer page, dashboard)."""
    layout = _merged(layout or {}, {**HOUSE_LAYOUT, "height": height})
    layout["template"] = _template()
    html = pio.to_html(
        {"data": data, "layout": layout},
        validate=False,
        full_html=False,
        include_plotlyjs=False,
        config=CONFIG,
    )
    return mark_safe(html)  # plotly escapes the data it embeds


def figure_div(fig: go.Figure, *, height: int = 320) -> SafeString:
    """The figure as an HTML ``<div>`` plus its inline init script; plotly.js not included."""
    html = pio.to_html(
        styled(fig, height=height),
        full_html=False,
        include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True},
    )
    return mark_safe(html)  # plotly escapes the data it embeds


def score_distribution_compare(preview) -> SafeString:
    """Current vs proposed score distribution (``customers.preview.SettingsPreview``):
    two overlaid histograms over 5-point score bins."""
    width = 100 / len(preview.bin_edges)
    centers = [lo + width / 2 for lo in preview.bin_edges]
    fig = go.Figure(
        [
            go.Bar(
                x=centers,
                y=preview.current_counts,
                width=width,
                name="Now",
                marker_color="#9aa5b8",
            ),
            go.Bar(
                x=centers,
                y=preview.proposed_counts,
                width=width,
                name="With the change",
                marker_color="#2f6fdb",
                opacity=0.55,
            ),
        ]
    )
    fig.update_layout(
        barmode="overlay",
        xaxis={"range": [0, 100], "dtick": 10},  # the heading says "score"
        yaxis_title="Customers",
    )
    return figure_div(fig, height=300)

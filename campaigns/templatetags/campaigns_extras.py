"""Formatting for plan screens: rates and lifts in percentage points."""

from __future__ import annotations

import math

from django import template

register = template.Library()


@register.filter
def pts(value: float | None) -> str:
    """0.061 → "+6.1" (signed percentage points)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:+.1f}"


@register.filter
def pct(value: float | None, digits: int = 1) -> str:
    """0.061 → "6.1%"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:.{int(digits)}f}%"


@register.filter
def money(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.2f}"


@register.filter
def money0(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.0f}"


@register.filter
def times(value: float | None) -> str:
    """ROI 3.5 → "+350%"."""
    if value is None:
        return "—"
    return f"{value * 100:+,.0f}%"

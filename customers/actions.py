"""Which touchpoints are *our* actions on a customer, and did the customer respond?

Until the plans issue records step executions, an action is recognised from touchpoints:
those sent by a plan or campaign (their ``source``) and customer-success contacts (their
type). To teach the screens a new kind of action, add a source or a type key below — or,
once plans exist, add a provider to ``ACTION_PROVIDERS`` returning ``PlanAction`` objects.

"Did it work for this customer?": engagement actions per week in the four weeks before an
action against the four weeks after it (the action itself not counted).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

ACTION_SOURCES = frozenset({"campaign", "plan", "plans"})
ACTION_TYPE_KEYS = frozenset({"cs_call"})
WINDOW_WEEKS = 4


@dataclass(frozen=True)
class TouchRow:
    """The few columns of one touchpoint the detail screen works with."""

    id: int
    occurred_at: datetime
    type_key: str
    type_label: str
    channel: str
    counts_as_engagement: bool
    source: str


@dataclass(frozen=True)
class PlanAction:
    at: datetime
    label: str
    kind: str  # "campaign" | "cs" | whatever a provider names
    touchpoint_id: int | None = None


@dataclass(frozen=True)
class ActionEffect:
    action: PlanAction
    per_week_before: float
    per_week_after: float
    after_complete: bool  # False while the four weeks after have not all passed

    @property
    def change(self) -> float:
        return self.per_week_after - self.per_week_before


def action_q(prefix: str = "") -> Q:
    """Touchpoints that are our actions (for querysets over touchpoints)."""
    return Q(**{f"{prefix}source__in": ACTION_SOURCES}) | Q(
        **{f"{prefix}type__key__in": ACTION_TYPE_KEYS}
    )


def _touchpoint_actions(rows: Sequence[TouchRow]) -> list[PlanAction]:
    actions = []
    for row in rows:
        if row.source in ACTION_SOURCES:
            actions.append(PlanAction(row.occurred_at, row.type_label, "campaign", row.id))
        elif row.type_key in ACTION_TYPE_KEYS:
            actions.append(PlanAction(row.occurred_at, row.type_label, "cs", row.id))
    return actions


ACTION_PROVIDERS: list[Callable[[Sequence[TouchRow]], list[PlanAction]]] = [_touchpoint_actions]


def action_effects(
    rows: Sequence[TouchRow], *, now: datetime, weeks: int = WINDOW_WEEKS
) -> list[ActionEffect]:
    """For each action found in ``rows`` (newest first): engagement actions per week in the
    ``weeks`` weeks before and after it. ``rows`` must cover those windows."""
    window = timedelta(weeks=weeks)
    actions = sorted(
        (a for provider in ACTION_PROVIDERS for a in provider(rows)), key=lambda a: a.at
    )
    action_ids = {a.touchpoint_id for a in actions}
    engaged = [r.occurred_at for r in rows if r.counts_as_engagement and r.id not in action_ids]
    effects = []
    for action in reversed(actions):
        before = sum(1 for t in engaged if action.at - window <= t < action.at)
        after = sum(1 for t in engaged if action.at < t <= action.at + window)
        effects.append(
            ActionEffect(action, before / weeks, after / weeks, action.at + window <= now)
        )
    return effects

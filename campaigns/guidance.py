"""What the builder and launch screens tell a marketer before launch: the sample-size guidance
(smallest lift the holdout can detect) and a step's email rendered for a real customer."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from campaigns import stats
from campaigns.models import Enrollment, PlanStep
from customers.models import Customer
from segments.models import Segment

ASSUMED_BASELINE = 0.10  # re-engagement without a plan, when no past control group exists
HOLDOUT_OPTIONS = (5, 10, 20, 30, 50)
MIN_HISTORY = 30  # finished control enrollments needed to trust a measured baseline


@dataclass(frozen=True)
class HoldoutOption:
    percent: int
    control: int
    mde: float | None  # smallest detectable lift (absolute), None when not detectable


@dataclass(frozen=True)
class SampleSizeAdvice:
    eligible: int
    holdout_percent: int
    baseline: float
    baseline_source: str  # "this segment's past control groups", … or "assumed"
    mde: float | None
    options: list[HoldoutOption]
    needed_for_5pts: int | None  # customers to detect +5 points at this holdout

    @property
    def sentence(self) -> str:
        if self.mde is None:
            return (
                f"With {self.eligible:,} customers and a {self.holdout_percent}% holdout no "
                "realistic lift can be told apart from chance: use a larger segment or holdout."
            )
        return (
            f"With {self.eligible:,} customers and a {self.holdout_percent}% holdout, the plan "
            f"can detect a lift of {self.mde * 100:.1f} points or more over a "
            f"{self.baseline * 100:.1f}% baseline (95% confidence, 80% power)."
        )


def baseline_rate(segment: Segment | None) -> tuple[float, str]:
    """Re-engagement rate without action: the past control groups of this segment, else of
    all plans, else ``ASSUMED_BASELINE`` (one aggregate query)."""
    finished = Q(arm=Enrollment.Arm.CONTROL) & ~Q(status=Enrollment.Status.ACTIVE)
    agg = Enrollment.objects.filter(finished).aggregate(
        n_all=Count("id"),
        x_all=Count("id", filter=Q(status=Enrollment.Status.REENGAGED)),
        n_seg=Count("id", filter=Q(segment=segment) if segment else Q(pk__in=[])),
        x_seg=Count(
            "id",
            filter=(Q(segment=segment) if segment else Q(pk__in=[]))
            & Q(status=Enrollment.Status.REENGAGED),
        ),
    )
    if agg["n_seg"] >= MIN_HISTORY:
        return agg["x_seg"] / agg["n_seg"], "this segment's past control groups"
    if agg["n_all"] >= MIN_HISTORY:
        return agg["x_all"] / agg["n_all"], "past control groups of all plans"
    return ASSUMED_BASELINE, "assumed (no control group has finished yet)"


def _maybe(value: float) -> float | None:
    return None if value != value else float(value)  # NaN → None


def sample_size_advice(
    *, eligible: int, holdout_percent: int, segment: Segment | None
) -> SampleSizeAdvice:
    """Smallest detectable lift for this audience and holdout, and for a few other holdouts."""
    baseline, source = baseline_rate(segment)
    percents = sorted({*HOLDOUT_OPTIONS, holdout_percent} - {0})
    mdes = stats.minimum_detectable_lift(eligible, baseline, holdout=[p / 100 for p in percents])
    options = [
        HoldoutOption(p, round(eligible * p / 100), _maybe(m))
        for p, m in zip(percents, mdes, strict=True)
    ]
    chosen = next((o.mde for o in options if o.percent == holdout_percent), None)
    need = None
    if 0 < holdout_percent < 100 and baseline + 0.05 < 1:
        n = float(stats.sample_size(baseline, 0.05, holdout=holdout_percent / 100))
        need = int(n) if n != float("inf") else None
    return SampleSizeAdvice(
        eligible, holdout_percent, baseline, source, chosen if eligible else None, options, need
    )


@dataclass(frozen=True)
class EmailPreview:
    subject: str
    text: str
    html: str
    to: str
    merge: dict


def preview_email(step: PlanStep, customer: Customer) -> EmailPreview:
    """The step's email as ``customer`` would get it now (``campaigns.emails``), and the merge
    fields it was filled with."""
    from django.utils import timezone

    from campaigns import emails

    now = timezone.now()
    rendered = emails.email_preview(step, customer, now=now)
    merge = emails.merge_fields(customer, now=now)
    shown = ("name", "first_name", "score", "days_since_last_action", "company", "email")
    return EmailPreview(
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        to=rendered.to,
        merge={k: merge[k] for k in shown if k in merge},
    )

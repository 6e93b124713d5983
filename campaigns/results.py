"""A plan's results: enrolled, actions, re-engagement treatment vs control, lift with a CI,
revenue after enrollment, coupon cost, value regained, ROI, cumulative re-engagement and the
best moment to act — per plan, per step and per segment.

Every number comes from a handful of set-based aggregate queries (GROUP BY in the database;
Python only combines the few rows they return) and ``campaigns/stats.py`` for the statistics.
Works on PostgreSQL and SQLite (the two raw statements have a dialect each).

Definitions (also on the results page and in docs/plan-results.md):

- **Enrolled**: enrollments of the plan, by arm. **Re-engaged**: enrollments that ended
  ``reengaged`` (a new engagement action after enrollment); the rate is re-engaged / enrolled
  in the arm. Lift = rate(treatment) − rate(control) with Newcombe's score interval.
- **Per step**: the customers who *reached* the step (an execution row exists: sent, held out
  for control, or otherwise), and of those, who re-engaged before the next step
  (``reengaged_after_step``). Control customers reach steps too (their actions are held out),
  so the step's lift compares like with like.
- **Per segment**: the saved segment the customer was enrolled from (one-off launches); for
  always-on plans the stage at enrollment.
- **Revenue per customer** in the 30/60/90 days after enrollment: the sum of touchpoint
  ``value`` (purchases) in the window, over the customers of the arm whose window has fully
  elapsed (so a customer enrolled yesterday does not count as 0 spent in 90 days).
- **Value regained**: (revenue per treated − revenue per control customer) × treated
  customers, revenue counted from enrollment to 90 days after it (or to now); both arms
  were enrolled at the same times, so the difference of means is unbiased.
- **Coupon cost**: the ``cost`` of coupons redeemed. **Action cost**: actions performed
  (sent) × ``CAMPAIGNS_ACTION_COSTS[kind]`` (settings; defaults below).
- **ROI** = (value regained − coupon cost − action cost) / (coupon cost + action cost).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, Sum
from django.utils import timezone

from campaigns import stats
from campaigns.models import Coupon, Enrollment, Plan, PlanStep, StepExecution
from campaigns.results_store import PlanResultsSnapshot
from customers.models import Stage, Touchpoint

REVENUE_WINDOWS = (30, 60, 90)
CURVE_DAYS = 60  # cumulative re-engagement chart: days since enrollment shown
MOMENT_WIDTH = 7  # best moment: bucket width in days since the last action
MOMENT_MAX_DAYS = 182
MOMENT_MIN_COUNT = 20
DEFAULT_ACTION_COSTS = {
    # Rough per-action costs (currency of the revenue): an ESP send, a CS call's time.
    "email": 0.002,
    "survey": 0.002,
    "coupon": 0.0,  # its cost is counted when redeemed
    "cs_task": 5.0,
    "webhook": 0.0,
}
STAGE_LABELS = dict(Stage.choices)
ARMS = (Enrollment.Arm.TREATMENT, Enrollment.Arm.CONTROL)


def action_costs() -> dict[str, float]:
    """Per-action costs: ``settings.CAMPAIGNS_ACTION_COSTS`` over the defaults."""
    return {**DEFAULT_ACTION_COSTS, **getattr(settings, "CAMPAIGNS_ACTION_COSTS", {})}


@dataclass
class Comparison:
    """Treatment vs control re-engagement for one slice (plan, step or segment)."""

    label: str
    n_treat: int = 0
    x_treat: int = 0
    n_ctrl: int = 0
    x_ctrl: int = 0
    key: str = ""
    sent: int = 0
    held_out: int = 0
    failed: int = 0
    suppressed: int = 0
    lift: float | None = None
    lower: float | None = None
    upper: float | None = None
    verdict: stats.Verdict | None = None

    @property
    def enrolled(self) -> int:
        return self.n_treat + self.n_ctrl

    @property
    def rate_treat(self) -> float | None:
        return self.x_treat / self.n_treat if self.n_treat else None

    @property
    def rate_ctrl(self) -> float | None:
        return self.x_ctrl / self.n_ctrl if self.n_ctrl else None


@dataclass
class RevenueWindow:
    days: int
    n_treat: int
    n_ctrl: int
    per_treat: float | None
    per_ctrl: float | None

    @property
    def difference(self) -> float | None:
        if self.per_treat is None or self.per_ctrl is None:
            return None
        return self.per_treat - self.per_ctrl


@dataclass
class Curve:
    """Cumulative re-engaged share by days since enrollment, per arm (NaN: nobody that old)."""

    days: list[int]
    treatment: list[float]
    control: list[float]


@dataclass
class Moment:
    """Best moment to act for one segment (see ``stats.best_moment_from_buckets``)."""

    label: str
    key: str
    treatment: stats.BestMoment
    control_rate: np.ndarray
    median_days_at_enrollment: float | None
    suggested_delay: int | None

    @property
    def fall_day(self) -> int | None:
        """``fall_at`` in whole days (floored), as the page states it."""
        fall = self.treatment.fall_at
        return None if fall is None else int(fall)


@dataclass
class PlanResults:
    plan: Plan
    overall: Comparison
    steps: list[Comparison]
    segments: list[Comparison]
    revenue: list[RevenueWindow]
    revenue_treat_total: float
    revenue_ctrl_total: float
    coupons_issued: int
    coupons_redeemed: int
    roi: stats.Roi
    curve: Curve
    moments: list[Moment]
    status_counts: dict[str, int] = field(default_factory=dict)
    computed_at: datetime | None = None

    @property
    def actions_sent(self) -> int:
        return sum(s.sent for s in self.steps)


def _finish(c: Comparison) -> Comparison:
    """Fill lift, CI and verdict from the counts (both arms needed)."""
    if c.n_treat and c.n_ctrl:
        d, lo, hi = stats.diff_ci(c.x_treat, c.n_treat, c.x_ctrl, c.n_ctrl)
        c.lift, c.lower, c.upper = float(d), float(lo), float(hi)
    c.verdict = stats.verdict(c.x_treat, c.n_treat, c.x_ctrl, c.n_ctrl)
    return c


# --- queries -------------------------------------------------------------------------------


def _enrollment_counts(plan_id: int) -> list[tuple]:
    """(segment id, segment name, stage at enrollment, arm, status, step re-engaged after, n)."""
    return list(
        Enrollment.objects.filter(plan_id=plan_id)
        .order_by()
        .values_list(
            "segment_id",
            "segment__name",
            "stage_at_enrollment",
            "arm",
            "status",
            "reengaged_after_step_id",
        )
        .annotate(n=Count("id"))
    )


def _execution_counts(plan_id: int) -> list[tuple]:
    """(step id, arm, status, n) over the plan's step executions."""
    return list(
        StepExecution.objects.filter(plan_id=plan_id)
        .order_by()
        .values_list("step_id", "enrollment__arm", "status")
        .annotate(n=Count("id"))
    )


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _sql_now(now: datetime):
    """``now`` as a raw-SQL parameter: SQLite stores naive UTC text, so give it that."""
    if _is_postgres():
        return now
    return now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _days_between(start: str, end: str) -> str:
    """SQL for fractional days from ``start`` to ``end`` (two timestamp columns)."""
    if _is_postgres():
        # date_part gives double precision; EXTRACT gives numeric, several times slower here.
        return f"(date_part('epoch', {end} - {start}) / 86400.0)"
    return f"(julianday({end}) - julianday({start}))"


def _revenue(plan_id: int, now: datetime) -> dict[str, dict]:
    """Per arm: revenue in each window over the matured customers, the matured counts, and
    revenue from enrollment to min(now, 90 days after) over everyone.

    One statement: enrollments joined to their customers' valued touchpoints inside the
    90-day window (range scan on the (customer, occurred_at) index), grouped by arm.
    """
    e, t = Enrollment._meta.db_table, Touchpoint._meta.db_table
    longest = max(REVENUE_WINDOWS)
    if _is_postgres():
        window_end = "e.enrolled_at + make_interval(days => %s)"
        matured = "e.enrolled_at <= %s - make_interval(days => %s)"
    else:
        window_end = "datetime(e.enrolled_at, '+' || %s || ' days')"
        matured = "e.enrolled_at <= datetime(%s, '-' || %s || ' days')"
    sums, params = [], []
    for days in REVENUE_WINDOWS:
        age = _days_between("e.enrolled_at", "t.occurred_at")
        sums.append(
            f"SUM(CASE WHEN {age} < %s AND {matured} THEN t.value ELSE 0 END) AS rev_{days}"
        )
        params += [days, _sql_now(now), days]
    sql = f"""
        SELECT e.arm, {", ".join(sums)}, SUM(t.value) AS rev_all
        FROM {e} e JOIN {t} t
          ON t.customer_id = e.customer_id
         AND t.occurred_at >= e.enrolled_at
         AND t.occurred_at < {window_end}
         AND t.value IS NOT NULL
        WHERE e.plan_id = %s
        GROUP BY e.arm
    """
    params += [longest, plan_id]
    out: dict[str, dict] = {arm: {"rev": {}, "matured": {}, "all": 0.0} for arm in ARMS}
    with connection.cursor() as cur:
        cur.execute(sql, params)
        for arm, *values in cur.fetchall():
            if arm not in out:
                continue
            for days, value in zip(REVENUE_WINDOWS, values[:-1], strict=True):
                out[arm]["rev"][days] = float(value or 0)
            out[arm]["all"] = float(values[-1] or 0)
    cutoffs = {days: now - timedelta(days=days) for days in REVENUE_WINDOWS}
    matured_counts = (
        Enrollment.objects.filter(plan_id=plan_id)
        .order_by()
        .values_list("arm")
        .annotate(
            **{
                f"m{days}": Count("id", filter=Q(enrolled_at__lte=cutoffs[days]))
                for days in REVENUE_WINDOWS
            }
        )
    )
    for arm, *counts in matured_counts:
        if arm in out:
            out[arm]["matured"] = dict(zip(REVENUE_WINDOWS, counts, strict=True))
    return out


def _curve_rows(plan_id: int, now: datetime) -> list[tuple]:
    """(arm, age in days, day re-engaged or None, n) for the plan's enrollments, both days
    capped at ``CURVE_DAYS`` (one GROUP BY; see ``_curve_from_rows``)."""
    e = Enrollment._meta.db_table
    age = _days_between("e.enrolled_at", "%s")
    back = _days_between("e.enrolled_at", "e.reengaged_at")
    cap = CURVE_DAYS
    floor = "FLOOR" if _is_postgres() else "_floor"
    sql = f"""
        SELECT arm, age_day, re_day, COUNT(*) FROM (
            SELECT e.arm,
                   CASE WHEN {age} >= {cap} THEN {cap} ELSE CAST({floor}({age}) AS INTEGER) END
                       AS age_day,
                   CASE WHEN e.status = 'reengaged' AND e.reengaged_at IS NOT NULL
                        THEN CASE WHEN {back} >= {cap + 1} THEN {cap + 1}
                                  ELSE CAST({floor}({back}) AS INTEGER) END
                   END AS re_day
            FROM {e} e WHERE e.plan_id = %s
        ) x
        GROUP BY arm, age_day, re_day
    """
    with connection.cursor() as cur:
        if not _is_postgres():
            _sqlite_floor(cur)
        cur.execute(sql, [_sql_now(now), _sql_now(now), plan_id])
        return cur.fetchall()


def _curve_from_rows(rows: list) -> Curve:
    """Cumulative re-engaged share by day d since enrollment, per arm: the Kaplan–Meier
    estimate (Kaplan & Meier, JASA 53 (1958) 457–481), so enrollments too recent to have
    reached day d count for the days they have had, not as "did not come back".

    1. events_k = enrollments re-engaged on day k (all are at least k days old);
    2. at_risk_k = enrollments at least k days old not re-engaged before day k;
    3. share(d) = 1 − Π_{k ≤ d} (1 − events_k / at_risk_k).
    Monotone by construction. Enrollments that ended without coming back (exhausted, opted
    out) stay at risk: the curve is "re-engaged while in the plan".
    """
    cap = CURVE_DAYS
    counts = {arm: np.zeros((cap + 1, cap + 3)) for arm in ARMS}  # last column: not back
    for arm, age_day, re_day, n in rows:
        if arm in counts:
            col = cap + 2 if re_day is None else max(0, int(re_day))
            counts[arm][min(max(0, int(age_day)), cap), col] += n
    days = list(range(cap + 1))
    curves = {}
    for arm, h in counts.items():
        total_by_age = h.sum(axis=1)
        survival, values = 1.0, []
        for k in days:
            older = slice(k, None)  # enrollments at least k days old
            events = h[older, k].sum()
            at_risk = total_by_age[older].sum() - h[older, :k].sum()
            if at_risk <= 0:
                values.append(float("nan") if k == 0 or not values else values[-1])
                continue
            survival *= 1 - events / at_risk
            values.append(1 - survival)
        curves[arm] = values
    return Curve(days, curves[Enrollment.Arm.TREATMENT], curves[Enrollment.Arm.CONTROL])


def _sqlite_floor(cursor) -> None:
    """SQLite before 3.35 has no FLOOR: register one on the connection."""
    import math

    raw = connection.connection
    if raw is not None:
        raw.create_function("_floor", 1, lambda v: None if v is None else math.floor(v))


def _moment_rows(*, plan_id: int | None = None, segment_id: int | None = None) -> list[tuple]:
    """(segment key, arm, bucket of days since last action at the first step, bucket of days
    since last action at enrollment, n, re-engaged) for finished enrollments."""
    e = Enrollment._meta.db_table
    at_enrol = _days_between("e.last_engagement_at_enrollment", "e.enrolled_at")
    where, params = (
        ["e.status <> 'active'", "e.days_since_last_action_at_first_step IS NOT NULL"],
        [],
    )
    if plan_id is not None:
        where.append("e.plan_id = %s")
        params.append(plan_id)
    if segment_id is not None:
        where.append("e.segment_id = %s")
        params.append(segment_id)
    top = MOMENT_MAX_DAYS // MOMENT_WIDTH
    floor = "FLOOR" if _is_postgres() else "_floor"
    sql = f"""
        SELECT COALESCE(CAST(e.segment_id AS TEXT), 'stage:' || e.stage_at_enrollment), e.arm,
               CAST({floor}(e.days_since_last_action_at_first_step / {MOMENT_WIDTH}) AS INTEGER),
               CAST({floor}({at_enrol}) AS INTEGER),
               COUNT(*),
               SUM(CASE WHEN e.status = 'reengaged' THEN 1 ELSE 0 END)
        FROM {e} e WHERE {" AND ".join(where)}
        GROUP BY 1, 2, 3, 4
    """
    with connection.cursor() as cur:
        if not _is_postgres():
            _sqlite_floor(cur)
        cur.execute(sql, params)
        rows = []
        for key, arm, bucket, at_enrol_day, n, hits in cur.fetchall():
            bucket = min(max(int(bucket or 0), 0), top - 1)
            rows.append((key, arm, bucket, at_enrol_day, int(n), int(hits or 0)))
        return rows


def best_moments(
    *, plan_id: int | None = None, segment_id: int | None = None, labels: dict[str, str]
) -> list[Moment]:
    """Best moment to act per segment key from finished enrollments (one GROUP BY)."""
    return _moments_from_rows(_moment_rows(plan_id=plan_id, segment_id=segment_id), labels)


def _moments_from_rows(rows: list, labels: dict[str, str]) -> list[Moment]:
    nb = MOMENT_MAX_DAYS // MOMENT_WIDTH
    per: dict[str, dict] = defaultdict(
        lambda: {
            "t_n": np.zeros(nb),
            "t_x": np.zeros(nb),
            "c_n": np.zeros(nb),
            "c_x": np.zeros(nb),
            "enrol_days": defaultdict(int),
        }
    )
    for key, arm, bucket, at_enrol_day, n, hits in rows:
        p = "t" if arm == Enrollment.Arm.TREATMENT else "c"
        per[key][f"{p}_n"][bucket] += n
        per[key][f"{p}_x"][bucket] += hits
        if at_enrol_day is not None:
            per[key]["enrol_days"][int(at_enrol_day)] += n
    moments = []
    for key, d in sorted(per.items(), key=lambda kv: -kv[1]["t_n"].sum()):
        bm = stats.best_moment_from_buckets(
            d["t_n"], d["t_x"], width=MOMENT_WIDTH, min_count=MOMENT_MIN_COUNT
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            ctrl = np.where(d["c_n"] >= MOMENT_MIN_COUNT // 2, d["c_x"] / d["c_n"], np.nan)
        median = _weighted_median(d["enrol_days"])
        delay = stats.suggested_first_delay(bm.fall_at, median if median is not None else 0.0)
        moments.append(Moment(labels.get(key, key), key, bm, ctrl, median, delay))
    return moments


def _weighted_median(counts: dict[int, int]) -> float | None:
    if not counts:
        return None
    values = np.array(sorted(counts))
    weights = np.array([counts[v] for v in values], dtype=float)
    cum = np.cumsum(weights)
    return float(values[np.searchsorted(cum, cum[-1] / 2)])


# --- assembly -------------------------------------------------------------------------------


def segment_label(key: str, names: dict[int, str]) -> str:
    if key.startswith("stage:"):
        stage = key.removeprefix("stage:")
        return f"Entered as {STAGE_LABELS.get(stage, stage or 'unknown').lower()}"
    try:
        return names.get(int(key), f"segment {key}")
    except ValueError:
        return key


def results_aggregates(plan: Plan, *, now: datetime | None = None) -> dict:
    """Run the aggregate queries for ``plan`` and return their rows as plain JSON-able data
    (what a results snapshot stores). Eight GROUP BY / aggregate statements."""
    now = now or timezone.now()
    coupons = Coupon.objects.filter(enrollment__plan_id=plan.pk).aggregate(
        issued=Count("id"),
        redeemed=Count("id", filter=Q(redeemed_at__isnull=False)),
        cost=Sum("cost", filter=Q(redeemed_at__isnull=False)),
    )
    sent_by_kind = (
        StepExecution.objects.filter(plan_id=plan.pk, status=StepExecution.Status.SENT)
        .order_by()
        .values_list("action")
        .annotate(n=Count("id"))
    )
    revenue = _revenue(plan.pk, now)
    return {
        "now": now.isoformat(),
        "enrollments": [list(r) for r in _enrollment_counts(plan.pk)],
        "executions": [list(r) for r in _execution_counts(plan.pk)],
        "revenue": {
            arm: {
                "rev": [revenue[arm]["rev"].get(d, 0.0) for d in REVENUE_WINDOWS],
                "matured": [revenue[arm]["matured"].get(d, 0) for d in REVENUE_WINDOWS],
                "all": revenue[arm]["all"],
            }
            for arm in ARMS
        },
        "coupons": {
            "issued": coupons["issued"],
            "redeemed": coupons["redeemed"],
            "cost": float(coupons["cost"] or Decimal(0)),
        },
        "sent_by_kind": [list(r) for r in sent_by_kind],
        "curve": [list(r) for r in _curve_rows(plan.pk, now)],
        "moments": [list(r) for r in _moment_rows(plan_id=plan.pk)],
    }


def plan_results_live(plan: Plan, *, now: datetime | None = None) -> PlanResults:
    """Everything on the results page for ``plan``, computed now from the database."""
    return results_from_aggregates(plan, results_aggregates(plan, now=now))


def plan_results(plan: Plan, *, now: datetime | None = None) -> dict:
    """The results as a JSON document (what the REST API serves): the stored snapshot when
    recent, as ``plan_results_stored``."""
    return results_document(plan_results_stored(plan, now=now))


def _num(value: float | None) -> float | None:
    """JSON has no NaN: None instead."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def _comparison_document(c: Comparison) -> dict:
    return {
        "label": c.label,
        "enrolled": c.enrolled,
        "treatment": {"enrolled": c.n_treat, "reengaged": c.x_treat, "rate": _num(c.rate_treat)},
        "control": {"enrolled": c.n_ctrl, "reengaged": c.x_ctrl, "rate": _num(c.rate_ctrl)},
        "actions": {
            "sent": c.sent,
            "held_out": c.held_out,
            "failed": c.failed,
            "suppressed": c.suppressed,
        },
        "lift": _num(c.lift),
        "ci95": [_num(c.lower), _num(c.upper)] if c.lift is not None else None,
        "verdict": c.verdict.text if c.verdict else "",
        "verdict_status": c.verdict.status if c.verdict else "",
        "more_needed": c.verdict.more_needed if c.verdict else None,
    }


def results_document(res: PlanResults) -> dict:
    """``PlanResults`` as plain JSON-able data (rates and lifts as fractions, money as floats)."""
    return {
        "plan": res.plan.pk,
        "computed_at": res.computed_at.isoformat() if res.computed_at else None,
        "ci_method": "Newcombe hybrid score interval (1998, method 10), 95%",
        "overall": _comparison_document(res.overall),
        "steps": [_comparison_document(c) for c in res.steps],
        "segments": [_comparison_document(c) for c in res.segments],
        "revenue_per_customer": [
            {
                "days": w.days,
                "treatment": _num(w.per_treat),
                "control": _num(w.per_ctrl),
                "customers": {"treatment": w.n_treat, "control": w.n_ctrl},
            }
            for w in res.revenue
        ],
        "coupons": {"issued": res.coupons_issued, "redeemed": res.coupons_redeemed},
        "roi": {
            "value_regained": res.roi.value_regained,
            "coupon_cost": res.roi.coupon_cost,
            "action_cost": res.roi.action_cost,
            "cost": res.roi.cost,
            "roi": _num(res.roi.roi),
        },
        "cumulative_reengagement": {
            "days": res.curve.days,
            "treatment": [_num(v) for v in res.curve.treatment],
            "control": [_num(v) for v in res.curve.control],
        },
        "best_moment": [
            {
                "segment": m.label,
                "bucket_days": int(m.treatment.width),
                "buckets": [
                    {"from_day": int(e), "enrollments": int(n), "rate": _num(r)}
                    for e, n, r in zip(
                        m.treatment.edges, m.treatment.counts, m.treatment.rate, strict=True
                    )
                    if n
                ],
                "falls_fastest_at_days": _num(m.treatment.fall_at),
                "suggested_first_step_delay_days": m.suggested_delay,
            }
            for m in res.moments
        ],
        "enrollments_by_status": res.status_counts,
    }


def results_from_aggregates(plan: Plan, agg: dict) -> PlanResults:
    """Assemble the results from ``results_aggregates`` rows (fresh or from a snapshot):
    only the plan's steps are read (one query); the rest is arithmetic on a few rows."""
    now = datetime.fromisoformat(agg["now"])
    steps = list(PlanStep.objects.filter(plan=plan).order_by("position", "id"))
    overall = Comparison("Whole plan", key="plan")
    by_step = {
        s.pk: Comparison(f"{s.position}. {s.get_action_display()}", key=str(s.pk)) for s in steps
    }
    by_segment: dict[str, Comparison] = {}
    names: dict[int, str] = {}
    status_counts: dict[str, int] = defaultdict(int)

    for seg_id, seg_name, stage, arm, status, after_step, n in agg["enrollments"]:
        treat = arm == Enrollment.Arm.TREATMENT
        back = status == Enrollment.Status.REENGAGED
        status_counts[status] += n
        key = str(seg_id) if seg_id is not None else f"stage:{stage}"
        if seg_id is not None:
            names[seg_id] = seg_name
        seg = by_segment.setdefault(key, Comparison("", key=key))
        for c in (overall, seg):
            if treat:
                c.n_treat += n
                c.x_treat += n if back else 0
            else:
                c.n_ctrl += n
                c.x_ctrl += n if back else 0
        if back and after_step in by_step:
            if treat:
                by_step[after_step].x_treat += n
            else:
                by_step[after_step].x_ctrl += n

    for step_id, arm, status, n in agg["executions"]:
        c = by_step.get(step_id)
        if c is None:
            continue
        if arm == Enrollment.Arm.TREATMENT:
            c.n_treat += n
        else:
            c.n_ctrl += n
        if status == StepExecution.Status.SENT:
            c.sent += n
        elif status == StepExecution.Status.HELD_OUT:
            c.held_out += n
        elif status == StepExecution.Status.FAILED:
            c.failed += n
        elif status == StepExecution.Status.SUPPRESSED:
            c.suppressed += n
    for c in by_step.values():
        overall.sent += c.sent
        overall.held_out += c.held_out
        overall.failed += c.failed
        overall.suppressed += c.suppressed

    for key, c in by_segment.items():
        c.label = segment_label(key, names)
    segments = sorted(by_segment.values(), key=lambda c: -c.enrolled)

    t = agg["revenue"][Enrollment.Arm.TREATMENT]
    c = agg["revenue"][Enrollment.Arm.CONTROL]
    windows = []
    for i, days in enumerate(REVENUE_WINDOWS):
        nt, nc = t["matured"][i], c["matured"][i]
        windows.append(
            RevenueWindow(
                days, nt, nc, t["rev"][i] / nt if nt else None, c["rev"][i] / nc if nc else None
            )
        )
    costs = action_costs()
    action_cost = sum(costs.get(kind, 0.0) * n for kind, n in agg["sent_by_kind"])
    coupons = agg["coupons"]
    roi = stats.roi(
        revenue_treat=t["all"],
        n_treat=overall.n_treat,
        revenue_ctrl=c["all"],
        n_ctrl=overall.n_ctrl,
        coupon_cost=coupons["cost"],
        action_cost=action_cost,
    )
    labels = {key: segment_label(key, names) for key in by_segment}
    return PlanResults(
        plan=plan,
        overall=_finish(overall),
        steps=[_finish(by_step[s.pk]) for s in steps],
        segments=[_finish(s) for s in segments],
        revenue=windows,
        revenue_treat_total=t["all"],
        revenue_ctrl_total=c["all"],
        coupons_issued=coupons["issued"],
        coupons_redeemed=coupons["redeemed"],
        roi=roi,
        curve=_curve_from_rows(agg["curve"]),
        moments=_moments_from_rows(agg["moments"], labels),
        status_counts=dict(status_counts),
        computed_at=now,
    )


def plans_overview(plans) -> dict[int, Comparison]:
    """Enrolled, re-engaged per arm and lift for many plans in one GROUP BY (plan list)."""
    rows = (
        Enrollment.objects.filter(plan__in=plans)
        .order_by()
        .values_list("plan_id", "arm")
        .annotate(n=Count("id"), x=Count("id", filter=Q(status=Enrollment.Status.REENGAGED)))
    )
    out: dict[int, Comparison] = {}
    for plan_id, arm, n, x in rows:
        c = out.setdefault(plan_id, Comparison("", key=str(plan_id)))
        if arm == Enrollment.Arm.TREATMENT:
            c.n_treat, c.x_treat = n, x
        else:
            c.n_ctrl, c.x_ctrl = n, x
    for c in out.values():
        _finish(c)
    return out


# --- stored results (snapshots) ---------------------------------------------------------------

RESULTS_REFRESH_SECONDS = 300  # the tick refreshes running plans' results this often
RESULTS_MAX_AGE_SECONDS = 900  # older than this, the page computes live instead
REFRESH_STATUSES = (Plan.Status.ACTIVE, Plan.Status.PAUSED, Plan.Status.SCHEDULED)


def results_refresh(plan: Plan, *, now: datetime | None = None) -> PlanResultsSnapshot:
    """Recompute ``plan``'s aggregates and store them (one upsert)."""
    now = now or timezone.now()
    started = time.perf_counter()
    data = results_aggregates(plan, now=now)
    ms = round((time.perf_counter() - started) * 1000)
    snapshot, _ = PlanResultsSnapshot.objects.update_or_create(
        plan=plan, defaults={"computed_at": now, "duration_ms": ms, "data": data}
    )
    return snapshot


def results_refresh_due(
    *, now: datetime | None = None, max_age_seconds: int = RESULTS_REFRESH_SECONDS
) -> int:
    """Refresh the stored results of running plans (and plans completed since their last
    snapshot) older than ``max_age_seconds``. Returns how many were refreshed.

    Called by the plan tick (``campaigns.tick.plans_tick``) after it has enrolled, executed
    and closed: one set of aggregate queries per stale plan, about 1 s at 100,000 enrollments.
    """
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=max_age_seconds)
    fresh = PlanResultsSnapshot.objects.filter(computed_at__gte=stale_before).values("plan_id")
    completed_since = PlanResultsSnapshot.objects.filter(
        plan_id=OuterRef("pk"), computed_at__gte=OuterRef("completed_at")
    )
    plans = (
        Plan.objects.filter(
            Q(status__in=REFRESH_STATUSES)
            | Q(status=Plan.Status.COMPLETED, completed_at__isnull=False) & ~Exists(completed_since)
        )
        .exclude(pk__in=fresh)
        .filter(launched_at__isnull=False)
    )
    refreshed = 0
    for plan in plans:
        results_refresh(plan, now=now)
        refreshed += 1
    return refreshed


def plan_results_stored(
    plan: Plan, *, now: datetime | None = None, max_age_seconds: int = RESULTS_MAX_AGE_SECONDS
) -> PlanResults:
    """The results page's read: the stored snapshot when it is recent enough, else computed
    now (and stored for the next reader)."""
    now = now or timezone.now()
    snapshot = PlanResultsSnapshot.objects.filter(
        plan=plan, computed_at__gte=now - timedelta(seconds=max_age_seconds)
    ).first()
    if snapshot is None:
        snapshot = results_refresh(plan, now=now)
    return results_from_aggregates(plan, snapshot.data)

"""Lifecycle stages from an ordered list of rules, judged against each customer's own rhythm.

A customer is "cooling" when they have been silent for noticeably longer than they usually
are, "at risk" when much longer (or when the MBG/NBD model already doubts they are still
engaged), and "lapsed" when silent for very long. "How long is long" scales with the customer's
own typical gap between engagement actions, so a weekly user is flagged after two quiet weeks
while a quarterly user is not.

Algorithm (per customer, all vectorized over numpy arrays):

1. ``anchor`` = last engagement action, or signup if the customer never acted;
   ``recency = now − anchor``; ``age = now − min(signup, first action)``.
2. ``gap`` = own expected gap clamped to ``[min_gap_days, max_gap_days]`` when the customer has
   at least 3 engagement actions and a known gap, else ``default_gap_days``.
3. Thresholds: ``cooling_after = max(cooling_multiple·gap, cooling_min_days)``,
   ``at_risk_after = max(at_risk_multiple·gap, at_risk_min_days)``,
   ``lapsed_after = min(max(lapsed_multiple·gap, lapsed_min_days), lapsed_max_days)``; then a
   running max makes them non-decreasing and everything is capped at ``lapsed_max_days``.
4. The first matching rule of :data:`RULE_IDS` wins (see :func:`evaluate`).
5. ``due_at``: the next instant at which, with no new action, the stage would change.

The silence-based rules are the "hiatus" heuristic that Wübben & von Wangenheim (2008,
"Instant customer base analysis: managerial heuristics often 'get it right'", Journal of
Marketing 72(3), 82-93) found to rival stochastic models; here the hiatus scales with each
customer's own gap, and the MBG/NBD P(alive) (see :mod:`customers.engine.bgnbd`) can flag a
cooling customer as at risk early.

Rules compare *instants* (``now > anchor + threshold``) rather than durations
(``now − anchor > threshold``) so that ``due_at`` is exact in floating point: at ``due_at``
itself the stage is unchanged, at the next representable time after it the stage differs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

__all__ = [
    "AT_RISK",
    "COOLING",
    "ENGAGED",
    "LAPSED",
    "NEW",
    "NO_STAGE",
    "REENGAGED",
    "RULE_IDS",
    "RULE_STAGE",
    "STAGES",
    "STAGE_CODE",
    "StageExplanation",
    "StageInputs",
    "StageResult",
    "StageThresholds",
    "evaluate",
    "explain",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Stage names; a stage's integer code is its position here.
STAGES: tuple[str, ...] = ("new", "engaged", "cooling", "at_risk", "lapsed", "reengaged")
STAGE_CODE: dict[str, int] = {name: code for code, name in enumerate(STAGES)}
NEW, ENGAGED, COOLING, AT_RISK, LAPSED, REENGAGED = range(len(STAGES))
#: ``prev_stage`` value for a customer who has never been staged.
NO_STAGE = -1

#: Rule ids in evaluation order; a result's ``rule`` is a position here.
RULE_IDS: tuple[str, ...] = (
    "lapsed",
    "at_risk_recency",
    "at_risk_probability",
    "cooling",
    "new",
    "reengaged",
    "engaged",
)
#: Stage code produced by each rule (same order as RULE_IDS).
RULE_STAGE: tuple[int, ...] = (LAPSED, AT_RISK, AT_RISK, COOLING, NEW, REENGAGED, ENGAGED)
(
    _R_LAPSED,
    _R_AT_RISK_RECENCY,
    _R_AT_RISK_PROBABILITY,
    _R_COOLING,
    _R_NEW,
    _R_REENGAGED,
    _R_ENGAGED,
) = range(len(RULE_IDS))
_RULE_STAGE_ARRAY = np.array(RULE_STAGE, dtype=np.int64)

# How stages read inside a sentence for a marketer.
_STAGE_WORDS = {
    NEW: "new",
    ENGAGED: "engaged",
    COOLING: "cooling",
    AT_RISK: "at risk",
    LAPSED: "lapsed",
    REENGAGED: "re-engaged",
}


@dataclass(frozen=True)
class StageThresholds:
    """Stage rule settings (days unless stated); built from the engagement settings row."""

    new_window_days: float = 30.0  # younger than this and not yet cooling -> "new"
    default_gap_days: float = 14.0  # typical gap assumed when the own rhythm is unknown
    min_gap_days: float = 2.0  # own gap is clamped to [min_gap_days, max_gap_days]
    max_gap_days: float = 60.0
    cooling_multiple: float = 2.0  # recency > max(cooling_multiple*gap, cooling_min_days)
    cooling_min_days: float = 7.0
    at_risk_multiple: float = 4.0
    at_risk_min_days: float = 21.0
    lapsed_multiple: float = 8.0
    lapsed_min_days: float = 60.0
    lapsed_max_days: float = 180.0  # silent this long -> lapsed whatever the rhythm
    at_risk_p_alive: float = 0.3  # cooling and P(still engaged) below this -> at risk already
    reengaged_window_days: float = 30.0  # stay "reengaged" this long after coming back

    def __post_init__(self) -> None:
        for f in fields(self):
            raw = getattr(self, f.name)
            try:
                value = float(raw)
            except (TypeError, ValueError):
                raise ValueError(f"{f.name} must be a number, got {raw!r}") from None
            # NaN would silently make every comparison False, so refuse it outright.
            if math.isnan(value) or value < 0:
                raise ValueError(f"{f.name} must be a number >= 0, got {raw!r}")
            object.__setattr__(self, f.name, value)  # e.g. Decimal or numpy scalar -> float
        if self.at_risk_p_alive > 1:
            raise ValueError(f"at_risk_p_alive must be within [0, 1], got {self.at_risk_p_alive}")


def _as_column(
    name: str, value: object, n: int, dtype: type, fill: float
) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
    """Convert one StageInputs field to a 1-D array of length n (None -> fill, scalar -> n)."""
    if value is None:
        return np.full(n, fill, dtype=dtype)
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim == 0:
        return np.full(n, arr, dtype=dtype)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({n},) like signup")
    return arr


@dataclass(frozen=True, eq=False)
class StageInputs:
    """Per-customer inputs: times are float days since a common origin, NaN = missing.

    ``signup`` is required (a customer always has one); the other arrays may be omitted (None:
    all missing, zero actions, no previous stage) or given as scalars, which are broadcast.
    ``prev_stage`` holds stage codes (:data:`STAGE_CODE`) or ``NO_STAGE`` (-1).
    """

    now: float
    signup: FloatArray
    first_action: FloatArray | None = None
    last_action: FloatArray | None = None
    n_actions: FloatArray | None = None
    expected_gap: FloatArray | None = None
    p_alive: FloatArray | None = None
    prev_stage: IntArray | None = None
    stage_since: FloatArray | None = None

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise fields through object.__setattr__ once, at construction.
        now = float(self.now)
        if not math.isfinite(now):
            raise ValueError("now must be a finite number of days")
        signup = np.atleast_1d(np.asarray(self.signup, dtype=np.float64))
        if signup.ndim != 1:
            raise ValueError("signup must be one-dimensional")
        if not np.all(np.isfinite(signup)):
            raise ValueError("signup must be known (finite) for every customer")
        n = signup.size
        columns = {
            "first_action": (np.float64, np.nan),
            "last_action": (np.float64, np.nan),
            "n_actions": (np.float64, 0.0),
            "expected_gap": (np.float64, np.nan),
            "p_alive": (np.float64, np.nan),
            "prev_stage": (np.int64, NO_STAGE),
            "stage_since": (np.float64, np.nan),
        }
        object.__setattr__(self, "now", now)
        object.__setattr__(self, "signup", signup)
        for name, (dtype, fill) in columns.items():
            object.__setattr__(self, name, _as_column(name, getattr(self, name), n, dtype, fill))
        n_actions = self.column("n_actions")
        if not np.all(np.isfinite(n_actions)) or np.any(n_actions < 0):
            raise ValueError("n_actions must be finite and >= 0")
        prev = self.column("prev_stage")
        if np.any((prev < NO_STAGE) | (prev >= len(STAGES))):
            raise ValueError(f"prev_stage must be a stage code 0..{len(STAGES) - 1} or -1")
        for name in ("first_action", "last_action", "stage_since"):
            if np.any(np.isinf(self.column(name))):
                raise ValueError(f"{name} must be finite or NaN (missing), not infinite")

    def __len__(self) -> int:
        return int(self.signup.size)

    @classmethod
    def single(
        cls,
        now: float,
        signup: float,
        first_action: float | None = None,
        last_action: float | None = None,
        n_actions: float = 0,
        expected_gap: float | None = None,
        p_alive: float | None = None,
        prev_stage: str | int | None = None,
        stage_since: float | None = None,
    ) -> StageInputs:
        """Inputs for one customer from plain floats (None = missing; prev_stage by name)."""

        def opt(value: float | None) -> float:
            return math.nan if value is None else float(value)

        if isinstance(prev_stage, str):
            if prev_stage not in STAGE_CODE:
                raise ValueError(f"unknown stage {prev_stage!r}; expected one of {STAGES}")
            prev_code = STAGE_CODE[prev_stage]
        else:
            prev_code = NO_STAGE if prev_stage is None else int(prev_stage)
        return cls(
            now=now,
            signup=np.array([float(signup)]),
            first_action=np.array([opt(first_action)]),
            last_action=np.array([opt(last_action)]),
            n_actions=np.array([float(n_actions)]),
            expected_gap=np.array([opt(expected_gap)]),
            p_alive=np.array([opt(p_alive)]),
            prev_stage=np.array([prev_code], dtype=np.int64),
            stage_since=np.array([opt(stage_since)]),
        )

    def column(self, name: str) -> np.ndarray:
        """One per-customer field as an array (never None after construction)."""
        value = getattr(self, name)
        assert isinstance(value, np.ndarray), name  # guaranteed by __post_init__
        return value

    def row(self, i: int) -> StageInputs:
        """The inputs of customer ``i`` alone (for :func:`explain`)."""
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"customer index {i} out of range for {n} customers")
        i %= n
        return StageInputs(
            now=self.now,
            **{f.name: self.column(f.name)[i : i + 1] for f in fields(self) if f.name != "now"},
        )

    def at(self, now: float) -> StageInputs:
        """The same customers judged at another time (nothing else changes)."""
        return StageInputs(
            now=now, **{f.name: self.column(f.name) for f in fields(self) if f.name != "now"}
        )


@dataclass(frozen=True, eq=False)
class StageResult:
    """Output of :func:`evaluate`, one entry per customer."""

    stage: IntArray  # stage codes (positions in STAGES)
    rule: IntArray  # positions in RULE_IDS
    # Earliest time after which, with no new action, the stage changes (+inf: never).
    due_at: FloatArray

    @property
    def stage_names(self) -> npt.NDArray[np.str_]:
        """Stage names instead of codes."""
        return np.asarray(STAGES)[self.stage]

    @property
    def rule_ids(self) -> npt.NDArray[np.str_]:
        """Rule ids instead of indices."""
        return np.asarray(RULE_IDS)[self.rule]


def _thresholds(gap: FloatArray, th: StageThresholds) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(cooling_after, at_risk_after, lapsed_after) for each gap, ordered and capped."""
    cooling = np.maximum(th.cooling_multiple * gap, th.cooling_min_days)
    # Running max: a later stage never starts before an earlier one, whatever the settings.
    at_risk = np.maximum(np.maximum(th.at_risk_multiple * gap, th.at_risk_min_days), cooling)
    lapsed = np.minimum(
        np.maximum(th.lapsed_multiple * gap, th.lapsed_min_days), th.lapsed_max_days
    )
    lapsed = np.maximum(lapsed, at_risk)
    # lapsed_max_days is a promise ("silent this long -> lapsed whatever the rhythm"), so it also
    # caps the earlier thresholds; without this a slow customer's at_risk_after (e.g. 4 × 60 =
    # 240 days) would drag lapsed_after past it through the running max.
    cap = th.lapsed_max_days
    return np.minimum(cooling, cap), np.minimum(at_risk, cap), np.minimum(lapsed, cap)


def evaluate(inputs: StageInputs, thresholds: StageThresholds) -> StageResult:
    """Assign every customer a lifecycle stage by the first matching rule.

    Rules, in order (thresholds from the module docstring, step 3):

    1. ``lapsed``: recency > lapsed_after.
    2. ``at_risk_recency``: recency > at_risk_after.
    3. ``at_risk_probability``: recency > cooling_after and p_alive < at_risk_p_alive
       (a missing p_alive never matches).
    4. ``cooling``: recency > cooling_after.
    5. ``new``: age <= new_window_days.
    6. ``reengaged``: prev_stage is at_risk or lapsed (just came back), or prev_stage is
       reengaged and now − stage_since <= reengaged_window_days.
    7. ``engaged``: otherwise.

    ``due_at`` is the next instant at which time alone changes the stage: the lapsed crossing
    for at-risk customers, the at-risk crossing for cooling ones, the earlier of the cooling
    crossing and the end of the new / re-engaged window for new / re-engaged ones, the cooling
    crossing for engaged ones, +inf for lapsed ones. It assumes the inputs stay as they are
    (in particular prev_stage): once the caller stores a new stage and stage_since, it should
    evaluate again. Fully vectorized; no Python loop over customers.
    """
    th = thresholds
    now = inputs.now
    signup = inputs.signup
    last = inputs.column("last_action")
    first = inputs.column("first_action")
    n_actions = inputs.column("n_actions")
    expected_gap = inputs.column("expected_gap")
    p_alive = inputs.column("p_alive")
    prev = inputs.column("prev_stage")
    since = inputs.column("stage_since")

    # 1. Anchor of silence and origin of age. fmin ignores a missing first action.
    anchor = np.where(np.isnan(last), signup, last)
    origin = np.fmin(signup, first)

    # 2. The customer's own rhythm if we trust it, else the default.
    own = (n_actions >= 3) & np.isfinite(expected_gap)
    clamped = np.minimum(np.maximum(expected_gap, th.min_gap_days), th.max_gap_days)
    gap = np.where(own, clamped, th.default_gap_days)

    # 3. Thresholds, turned into the instants at which they are crossed.
    cooling, at_risk, lapsed = _thresholds(gap, th)
    cooling_at = anchor + cooling
    at_risk_at = anchor + at_risk
    lapsed_at = anchor + lapsed
    new_until = origin + th.new_window_days
    reengaged_until = since + th.reengaged_window_days  # NaN when stage_since is missing

    # 4. First matching rule wins (np.select takes the first true condition).
    is_cooling = now > cooling_at
    came_back = (prev == AT_RISK) | (prev == LAPSED)
    in_reengaged_window = (prev == REENGAGED) & (now <= reengaged_until)
    rule = np.select(
        [
            now > lapsed_at,
            now > at_risk_at,
            is_cooling & (p_alive < th.at_risk_p_alive),
            is_cooling,
            now <= new_until,
            came_back | in_reengaged_window,
        ],
        [_R_LAPSED, _R_AT_RISK_RECENCY, _R_AT_RISK_PROBABILITY, _R_COOLING, _R_NEW, _R_REENGAGED],
        default=_R_ENGAGED,
    ).astype(np.int64)

    # 5. Next stage change without new actions. at_risk_probability -> at_risk_recency keeps
    #    the stage, so both at-risk rules wait for the lapsed crossing.
    reengaged_due = np.where(prev == REENGAGED, np.minimum(cooling_at, reengaged_until), cooling_at)
    due_at = np.select(
        [
            rule == _R_LAPSED,
            rule <= _R_AT_RISK_PROBABILITY,
            rule == _R_COOLING,
            rule == _R_NEW,
            rule == _R_REENGAGED,
        ],
        [np.inf, lapsed_at, at_risk_at, np.minimum(new_until, cooling_at), reengaged_due],
        default=cooling_at,
    )
    return StageResult(stage=_RULE_STAGE_ARRAY[rule], rule=rule, due_at=due_at)


# ---------------------------------------------------------------------------------------------
# Explanations (scalar re-implementation; tests check it agrees with the vectorized evaluate)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageExplanation:
    """Why one customer is in their stage, in numbers and in plain words."""

    stage: str
    rule: str
    sentence: str
    recency_days: float  # days since the last engagement action (or signup if none)
    gap_days: float  # gap the thresholds are based on (own, clamped, or the default)
    gap_is_own: bool
    cooling_after: float
    at_risk_after: float
    lapsed_after: float
    due_at: float


@dataclass(frozen=True)
class _Facts:
    """Scalar quantities of one customer, shared by the rule walk and the sentence."""

    anchor: float
    origin: float
    has_acted: bool
    n_actions: float
    own_gap: float  # the customer's own expected gap (NaN if unknown)
    gap: float
    gap_is_own: bool
    cooling: float
    at_risk: float
    lapsed: float
    p_alive: float
    prev: int
    since: float


def _facts(inputs: StageInputs, th: StageThresholds) -> _Facts:
    """Steps 1-3 of the module docstring for a single customer, with Python floats."""
    signup = float(inputs.signup[0])
    last = float(inputs.column("last_action")[0])
    first = float(inputs.column("first_action")[0])
    n_actions = float(inputs.column("n_actions")[0])
    own_gap = float(inputs.column("expected_gap")[0])
    has_acted = not math.isnan(last)
    gap_is_own = n_actions >= 3 and math.isfinite(own_gap)
    gap = min(max(own_gap, th.min_gap_days), th.max_gap_days) if gap_is_own else th.default_gap_days
    cooling = max(th.cooling_multiple * gap, th.cooling_min_days)
    at_risk = max(max(th.at_risk_multiple * gap, th.at_risk_min_days), cooling)
    lapsed = max(
        min(max(th.lapsed_multiple * gap, th.lapsed_min_days), th.lapsed_max_days), at_risk
    )
    cap = th.lapsed_max_days
    return _Facts(
        anchor=last if has_acted else signup,
        origin=signup if math.isnan(first) else min(signup, first),
        has_acted=has_acted,
        n_actions=n_actions,
        own_gap=own_gap,
        gap=gap,
        gap_is_own=gap_is_own,
        cooling=min(cooling, cap),
        at_risk=min(at_risk, cap),
        lapsed=min(lapsed, cap),
        p_alive=float(inputs.column("p_alive")[0]),
        prev=int(inputs.column("prev_stage")[0]),
        since=float(inputs.column("stage_since")[0]),
    )


def _rule_at(f: _Facts, now: float, th: StageThresholds) -> int:
    """Walk the ordered rules for one customer at time ``now``; returns the rule index."""
    if now > f.anchor + f.lapsed:
        return _R_LAPSED
    if now > f.anchor + f.at_risk:
        return _R_AT_RISK_RECENCY
    if now > f.anchor + f.cooling:
        # NaN < x is False, so an unknown p_alive never makes a customer at risk early.
        if f.p_alive < th.at_risk_p_alive:
            return _R_AT_RISK_PROBABILITY
        return _R_COOLING
    if now <= f.origin + th.new_window_days:
        return _R_NEW
    if f.prev in (AT_RISK, LAPSED) or (
        f.prev == REENGAGED and now <= f.since + th.reengaged_window_days
    ):
        return _R_REENGAGED
    return _R_ENGAGED


def _due_at(f: _Facts, rule: int, th: StageThresholds) -> float:
    """Next stage change for one customer given the rule that matched (see evaluate)."""
    cooling_at = f.anchor + f.cooling
    if rule == _R_LAPSED:
        return math.inf
    if rule in (_R_AT_RISK_RECENCY, _R_AT_RISK_PROBABILITY):
        return f.anchor + f.lapsed
    if rule == _R_COOLING:
        return f.anchor + f.at_risk
    if rule == _R_NEW:
        return min(f.origin + th.new_window_days, cooling_at)
    if rule == _R_REENGAGED and f.prev == REENGAGED:
        return min(cooling_at, f.since + th.reengaged_window_days)
    return cooling_at


def _days(value: float) -> str:
    """'1 day', '12 days', '2.5 days': one decimal at most, for people."""
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} day" if text == "1" else f"{text} days"


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _rhythm(f: _Facts) -> str:
    """How the gap was chosen, e.g. 'this customer usually acts every 6 days'."""
    if f.gap_is_own:
        text = f"this customer usually acts every {_days(f.own_gap)}"
        if f.gap != f.own_gap:
            text += f" (counted as {_days(f.gap)})"
        return text
    if f.n_actions == 0:
        return f"with no engagement action to learn from we assume a typical gap of {_days(f.gap)}"
    if f.n_actions < 3:
        plural = "" if f.n_actions == 1 else "s"
        return (
            f"with only {_num(f.n_actions)} engagement action{plural} "
            f"we assume a typical gap of {_days(f.gap)}"
        )
    return f"their own rhythm is unknown, so we assume a typical gap of {_days(f.gap)}"


def _sentence(f: _Facts, rule: int, now: float, due: float, th: StageThresholds) -> str:
    """Plain-words explanation of the matched rule plus what happens next."""
    recency = now - f.anchor
    if f.has_acted:
        silence = f"No engagement action for {_days(recency)}"
        last_seen = f"last engagement action {_days(recency)} ago"
    else:
        silence = f"No engagement action since signing up {_days(recency)} ago"
        last_seen = "no engagement action yet"
    rhythm = _rhythm(f)

    if rule == _R_LAPSED:
        if f.lapsed >= th.lapsed_max_days:
            limit = f"after {_days(f.lapsed)} of silence whatever the rhythm"
        else:
            limit = f"after {_days(f.lapsed)} of silence"
        text = f"{silence}; {rhythm}, so they count as lapsed {limit}."
    elif rule == _R_AT_RISK_RECENCY:
        text = (
            f"{silence}; {rhythm}, so cooling starts after {_num(f.cooling)} "
            f"and at risk after {_days(f.at_risk)}."
        )
    elif rule == _R_AT_RISK_PROBABILITY:
        text = (
            f"{silence}, past the cooling point of {_days(f.cooling)} ({rhythm}), and the "
            f"chance they are still engaged is only {f.p_alive:.0%} (below "
            f"{th.at_risk_p_alive:.0%}), so they count as at risk early."
        )
    elif rule == _R_COOLING:
        text = (
            f"{silence}; {rhythm}, so cooling starts after {_num(f.cooling)} "
            f"and at risk after {_days(f.at_risk)}."
        )
    elif rule == _R_NEW:
        text = (
            f"Joined {_days(now - f.origin)} ago, within the first "
            f"{_days(th.new_window_days)}; {last_seen}."
        )
    elif rule == _R_REENGAGED:
        if f.prev in (AT_RISK, LAPSED):
            text = f"Came back after being {_STAGE_WORDS[f.prev]}; {last_seen}."
        else:
            text = (
                f"Came back {_days(now - f.since)} ago and counts as re-engaged for "
                f"{_days(th.reengaged_window_days)}; {last_seen}."
            )
    else:
        text = f"Active: {last_seen}; {rhythm}, so cooling starts after {_days(f.cooling)}."

    if math.isinf(due):
        return text + " This stays so until they act again."
    # Which stage follows: the rule walk just after due_at (the next representable instant).
    next_stage = RULE_STAGE[_rule_at(f, math.nextafter(due, math.inf), th)]
    # Below 0.05 days the rounded "in 0 days" would read like a bug.
    when = "any moment now" if due - now < 0.05 else f"in {_days(due - now)}"
    return f"{text} Without a new action they become {_STAGE_WORDS[next_stage]} {when}."


def explain(inputs_single: StageInputs, thresholds: StageThresholds) -> StageExplanation:
    """Stage, rule, thresholds and a plain-words sentence for one customer.

    Walks the rules of :func:`evaluate` one by one with plain Python floats; an independent
    scalar implementation, which the tests compare against the vectorized one. Raises
    ValueError unless ``inputs_single`` holds exactly one customer (see StageInputs.single).
    """
    if len(inputs_single) != 1:
        raise ValueError(f"explain() takes one customer, got {len(inputs_single)}")
    f = _facts(inputs_single, thresholds)
    now = inputs_single.now
    rule = _rule_at(f, now, thresholds)
    due = _due_at(f, rule, thresholds)
    return StageExplanation(
        stage=STAGES[RULE_STAGE[rule]],
        rule=RULE_IDS[rule],
        sentence=_sentence(f, rule, now, due, thresholds),
        recency_days=now - f.anchor,
        gap_days=f.gap,
        gap_is_own=f.gap_is_own,
        cooling_after=f.cooling,
        at_risk_after=f.at_risk,
        lapsed_after=f.lapsed,
        due_at=due,
    )

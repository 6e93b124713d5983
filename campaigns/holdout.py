"""Holdout assignment: a deterministic hash of (plan, customer) picks the control arm.

Deterministic so it is stable (a customer who re-enters a plan lands in the same arm) and
auditable (anyone can recompute it from the two ids), and independent of enrollment order, so
it cannot be gamed by who is enrolled first.

1. h = the first 8 bytes of SHA-256("lifecycle-holdout:<plan id>:<customer id>") as an
   unsigned integer; u = h / 2^64 is uniform on [0, 1).
2. The customer is in the control arm when u < holdout_percent / 100.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

TREATMENT = "treatment"
CONTROL = "control"


def holdout_fraction(plan_id: int, customer_id: int) -> float:
    """The customer's uniform draw u in [0, 1) for this plan (step 1 above)."""
    digest = hashlib.sha256(f"lifecycle-holdout:{plan_id}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def holdout_arm(plan_id: int, customer_id: int, holdout_percent: float) -> str:
    """``"control"`` or ``"treatment"`` for this customer in this plan (step 2 above)."""
    return CONTROL if holdout_fraction(plan_id, customer_id) < holdout_percent / 100 else TREATMENT


def holdout_arms(plan_id: int, customer_ids: Iterable[int], holdout_percent: float) -> list[str]:
    """Arms for many customers of one plan, in the order given."""
    return [holdout_arm(plan_id, customer_id, holdout_percent) for customer_id in customer_ids]

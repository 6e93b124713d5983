"""Refreshing the staff screens' precomputed rows: the dashboard summary and the stored
renewal-risk list. Both are whole-table work, done here — off the request path — so every
screen request reads a few indexed rows (docs/performance.md, "Screens")."""

from __future__ import annotations

import time
from datetime import datetime

from django.utils import timezone

from customers.dashboard import dashboard_summary_due, dashboard_summary_refresh
from customers.locks import job_lock
from success.risk import renewal_risk_refresh, renewal_risk_update


def screen_summaries_refresh(*, now: datetime | None = None, force: bool = False) -> dict:
    """Recompute what is due (or everything with ``force``); returns what was done, with
    seconds. Overlapping calls skip (a try-lock): the running one does the work.

    Called by beat every minute (``screens.refresh_summaries``); an engine job may also call
    it when it finishes, with ``force=True``.
    """
    now = now or timezone.now()
    done: dict[str, object] = {}
    with job_lock("screen-summaries") as acquired:
        if not acquired:
            return {"skipped": "another refresh is running"}
        if force or dashboard_summary_due(now=now):
            started = time.perf_counter()
            dashboard_summary_refresh(now=now)
            done["dashboard_seconds"] = round(time.perf_counter() - started, 3)
        started = time.perf_counter()
        if force:
            done["renewal_risk_accounts"] = renewal_risk_refresh(now=now)
        else:
            done.update(renewal_risk_update(now=now))
        done["renewal_risk_seconds"] = round(time.perf_counter() - started, 3)
    return done

"""Celery tasks of the staff screens: thin callers."""

from __future__ import annotations

from celery import shared_task

from success.summaries import screen_summaries_refresh

# Beat runs it every minute; a run that waited longer than that is obsolete.
SUMMARIES_EXPIRES = 55


@shared_task(name="screens.refresh_summaries", expires=SUMMARIES_EXPIRES, ignore_result=True)
def summaries_refresh_task() -> dict:
    """Dashboard summary and renewal-risk list, when due (see ``screen_summaries_refresh``)."""
    return screen_summaries_refresh()

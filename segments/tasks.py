"""Celery tasks of segments: thin callers."""

from __future__ import annotations

from celery import shared_task

from segments.services import segment_sizes_record_all


@shared_task(name="segments.record_sizes", expires=6 * 3600, ignore_result=True)
def record_sizes_task() -> int:
    """Daily (beat, after the nightly pass): every segment's size for its trend line."""
    return segment_sizes_record_all()

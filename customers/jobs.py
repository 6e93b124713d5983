"""Engine jobs: run rows admins can watch, split into id-range chunks workers share.

A chunked job is a ``JobRun`` with ``JobChunk`` rows. A chunk is claimed, done and marked
done in one transaction (``SELECT … FOR UPDATE SKIP LOCKED`` on its row): a redelivered
chunk finds it done and does nothing; a worker killed mid-chunk rolls back, leaving it
pending for the redelivery or the next sweep; two workers never do one chunk together. The
worker completing the last chunk finishes the run (a conditional update, so exactly one
does) and runs the kind's finalizer.

Overlap: a new full rescore supersedes a running one (its chunks are skipped: the new run
recomputes from the newest settings anyway). Nightly and refresh runs take a try-lock and
record a *skipped* run when another is in progress.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from datetime import date, datetime, timedelta

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from customers import engagement
from customers.engine.snapshots import BLOCK_SIZE
from customers.locks import job_lock
from customers.models import Customer, JobChunk, JobRun

log = logging.getLogger(__name__)

RESCORE_CHUNK_IDS = 16 * BLOCK_SIZE  # 16,384 ids: ~60 chunks per million customers
NIGHTLY_CHUNK_IDS = 16 * BLOCK_SIZE


# A scores-only rescore on PostgreSQL is one chunk over every id: a rebuild-and-swap of the
# score table (engagement.engagement_scores_rebuild) that PostgreSQL parallelizes itself.
WHOLE_TABLE = 2**62


def _id_ranges(chunk_ids: int) -> list[tuple[int, int]]:
    bounds = Customer.objects.order_by("id").values_list("id", flat=True)
    first = bounds.first()
    if first is None:
        return []
    last = Customer.objects.order_by("-id").values_list("id", flat=True).first()
    start = (first // chunk_ids) * chunk_ids
    return [(lo, lo + chunk_ids - 1) for lo in range(start, last + 1, chunk_ids)]


def job_start(
    kind: str, *, detail: dict | None = None, triggered_by: str = "", chunk_ids: int
) -> JobRun:
    """Create a run and its chunks. For a rescore, supersede any running rescore."""
    with transaction.atomic():
        if kind == JobRun.Kind.RESCORE:
            superseded = list(
                JobRun.objects.filter(kind=kind, status=JobRun.Status.RUNNING).values_list(
                    "pk", flat=True
                )
            )
            JobRun.objects.filter(pk__in=superseded).update(
                status=JobRun.Status.SUPERSEDED, finished_at=timezone.now()
            )
            for old in superseded:
                transaction.on_commit(lambda old=old: engagement.engagement_rescore_cleanup(old))
        ranges = _id_ranges(chunk_ids)
        run = JobRun.objects.create(
            kind=kind,
            started_at=timezone.now(),
            detail=detail or {},
            triggered_by=triggered_by,
            chunks_total=len(ranges),
        )
        JobChunk.objects.bulk_create(
            [
                JobChunk(run=run, number=i, first_id=lo, last_id=hi)
                for i, (lo, hi) in enumerate(ranges)
            ]
        )
        if not ranges:
            _finish(run.pk)
    return run


def rescore_start(
    *, full: bool, reason: str = "", triggered_by: str = "", as_of: datetime | None = None
) -> JobRun:
    """A chunked rescore; with ``as_of``, as the engine would have seen things then."""
    swap = connection.vendor == "postgresql" and not full
    detail = {"full": full, "reason": reason, "swap": swap}
    if as_of is not None:
        detail["history_until"] = as_of.isoformat()
    run = job_start(
        JobRun.Kind.RESCORE,
        detail=detail,
        triggered_by=triggered_by,
        chunk_ids=WHOLE_TABLE if swap else RESCORE_CHUNK_IDS,
    )
    if connection.vendor == "postgresql" and not swap and run.status == JobRun.Status.RUNNING:
        try:
            engagement.engagement_rescore_prepare(run.pk, history_until=as_of)
        except Exception as exc:
            JobRun.objects.filter(pk=run.pk).update(
                status=JobRun.Status.FAILED,
                finished_at=timezone.now(),
                error=f"preparing the rescore: {exc}",
            )
            raise
    return run


def chunk_run(chunk_id: int) -> bool:
    """Do one chunk if it is still pending; True if this call did it."""
    if JobRun.objects.filter(chunks__pk=chunk_id, detail__swap=True).exists():
        return _swap_chunk_run(chunk_id)
    try:
        with transaction.atomic():
            chunk = (
                JobChunk.objects.select_for_update(skip_locked=True)
                .select_related("run")
                .filter(pk=chunk_id, status=JobChunk.Status.PENDING)
                .first()
            )
            if chunk is None:
                return False  # done, skipped, or being done by another worker right now
            run = chunk.run
            if run.status != JobRun.Status.RUNNING:
                chunk.status = JobChunk.Status.SKIPPED
                chunk.save(update_fields=["status"])
                return False
            result = _chunk_work(run, chunk)
            chunk.status = JobChunk.Status.DONE
            chunk.customers_processed = result.customers
            chunk.changes_made = result.changes
            chunk.finished_at = timezone.now()
            chunk.save()
            JobRun.objects.filter(pk=run.pk).update(
                chunks_done=F("chunks_done") + 1,
                customers_processed=F("customers_processed") + result.customers,
                changes_made=F("changes_made") + result.changes,
            )
    except Exception as exc:
        JobRun.objects.filter(pk=JobChunk.objects.get(pk=chunk_id).run_id).update(
            error=f"chunk {chunk_id}: {exc}\n{traceback.format_exc(limit=5)}"
        )
        raise
    _finish(chunk.run_id)
    return True


def _swap_chunk_run(chunk_id: int) -> bool:
    """The one chunk of a score-table rebuild: marked done in the swap's own transaction.

    Exclusive by the engine write lock the rebuild holds, so a redelivered or racing call
    finds the chunk done and abandons its copy; a worker killed before the swap commits
    leaves the old table and a pending chunk that the stalled-chunk sweep re-enqueues.
    """

    def record(customers: int) -> bool:
        chunk = (
            JobChunk.objects.select_for_update()
            .select_related("run")
            .filter(pk=chunk_id, status=JobChunk.Status.PENDING)
            .first()
        )
        if chunk is None or chunk.run.status != JobRun.Status.RUNNING:
            return False
        JobChunk.objects.filter(pk=chunk_id).update(
            status=JobChunk.Status.DONE,
            customers_processed=customers,
            changes_made=customers,
            finished_at=timezone.now(),
        )
        JobRun.objects.filter(pk=chunk.run_id).update(
            chunks_done=F("chunks_done") + 1,
            customers_processed=F("customers_processed") + customers,
            changes_made=F("changes_made") + customers,
        )
        return True

    chunk = JobChunk.objects.select_related("run").get(pk=chunk_id)
    if chunk.status != JobChunk.Status.PENDING:
        return False
    if chunk.run.status != JobRun.Status.RUNNING:
        JobChunk.objects.filter(pk=chunk_id, status=JobChunk.Status.PENDING).update(
            status=JobChunk.Status.SKIPPED
        )
        return False
    until = chunk.run.detail.get("history_until")
    try:
        done = engagement.engagement_scores_rebuild(
            history_until=datetime.fromisoformat(until) if until else None, on_swap=record
        )
    except Exception as exc:
        JobRun.objects.filter(pk=chunk.run_id).update(
            error=f"rebuilding scores: {exc}\n{traceback.format_exc(limit=5)}"
        )
        raise
    if done is None:
        return False
    _finish(chunk.run_id)
    return True


def _chunk_work(run: JobRun, chunk: JobChunk) -> engagement.RangeResult:
    if run.kind == JobRun.Kind.RESCORE:
        until = run.detail.get("history_until")
        return engagement.engagement_rescore_range(
            chunk.first_id,
            chunk.last_id,
            full=bool(run.detail.get("full")),
            run_id=run.pk,
            now=datetime.fromisoformat(until) if until else None,
            history_until=datetime.fromisoformat(until) if until else None,
        )
    if run.kind == JobRun.Kind.NIGHTLY:
        day = date.fromisoformat(run.detail["day"])
        now = datetime.fromisoformat(run.detail["now"])
        return engagement.engagement_daily_range(chunk.first_id, chunk.last_id, day=day, now=now)
    raise ValueError(f"{run.kind} runs have no chunks")


def _finish(run_id: int) -> None:
    """Mark the run succeeded once every chunk is done; exactly one caller wins."""
    finished = JobRun.objects.filter(
        pk=run_id, status=JobRun.Status.RUNNING, chunks_done__gte=F("chunks_total")
    ).update(status=JobRun.Status.SUCCEEDED, finished_at=timezone.now())
    if finished:
        run = JobRun.objects.get(pk=run_id)
        if run.kind == JobRun.Kind.RESCORE:
            engagement.engagement_rescore_cleanup(run.pk)
        if run.kind == JobRun.Kind.NIGHTLY:
            engagement.stage_daily_record(date.fromisoformat(run.detail["day"]))
            engagement.engine_tables_vacuum()


def pending_chunk_ids(run: JobRun) -> list[int]:
    return list(
        run.chunks.filter(status=JobChunk.Status.PENDING)
        .order_by("number")
        .values_list("pk", flat=True)
    )


def run_inline(run: JobRun, progress: Callable[[int], None] | None = None) -> JobRun:
    """Do all pending chunks of ``run`` in this process (commands, tests)."""
    for chunk_id in pending_chunk_ids(run):
        chunk_run(chunk_id)
        if progress:
            progress(1)
    run.refresh_from_db()
    return run


def refresh_run(*, now: datetime | None = None) -> JobRun:
    """One incremental refresh, recorded as a run; skipped if another is running."""
    with job_lock("engine-refresh") as acquired:
        run = JobRun.objects.create(kind=JobRun.Kind.REFRESH, started_at=timezone.now())
        if not acquired:
            run.status = JobRun.Status.SKIPPED
            run.finished_at = timezone.now()
            run.detail = {"reason": "another refresh is running"}
            run.save()
            return run
        return _record(run, lambda: _refresh_body(now))


def _refresh_body(now: datetime | None) -> tuple[int, int, dict]:
    result = engagement.engagement_refresh(now=now)
    return (
        result.customers,
        result.stage_changes,
        {"touchpoints_applied": result.touchpoints_applied},
    )


def nightly_start(
    *, day: date | None = None, now: datetime | None = None, triggered_by: str = "beat"
) -> JobRun:
    """Refit the model, then start the chunked nightly pass (stages, trend, snapshot).

    Skipped when another nightly run is starting right now or the day is already done.
    """
    now = now or timezone.now()
    day = day or now.date()
    with job_lock("engine-nightly") as acquired:
        done = JobRun.objects.filter(
            kind=JobRun.Kind.NIGHTLY,
            detail__day=day.isoformat(),
            status__in=[JobRun.Status.SUCCEEDED, JobRun.Status.RUNNING],
        ).exists()
        if not acquired or done:
            return JobRun.objects.create(
                kind=JobRun.Kind.NIGHTLY,
                started_at=timezone.now(),
                finished_at=timezone.now(),
                status=JobRun.Status.SKIPPED,
                triggered_by=triggered_by,
                detail={
                    "day": day.isoformat(),
                    "reason": "already done" if done else "another nightly is starting",
                },
            )
        engagement.engagement_rebase_if_needed(now=now)
        fit_run = JobRun.objects.create(
            kind=JobRun.Kind.FIT, started_at=timezone.now(), triggered_by=triggered_by
        )
        _record(fit_run, lambda: _fit_body(now))
        return job_start(
            JobRun.Kind.NIGHTLY,
            detail={"day": day.isoformat(), "now": now.isoformat()},
            triggered_by=triggered_by,
            chunk_ids=NIGHTLY_CHUNK_IDS,
        )


def _fit_body(now: datetime) -> tuple[int, int, dict]:
    try:
        fit = engagement.engagement_fit(as_of=now)
    except ValueError as exc:  # no activity yet: nothing to fit is not a failure
        return 0, 0, {"note": str(exc)}
    return (
        fit.customers,
        0,
        {
            "r": fit.r,
            "alpha": fit.alpha,
            "a": fit.a,
            "b": fit.b,
            "converged": fit.converged,
        },
    )


def _record(run: JobRun, body: Callable[[], tuple[int, int, dict]]) -> JobRun:
    started = time.perf_counter()
    try:
        customers, changes, detail = body()
    except Exception as exc:
        run.status = JobRun.Status.FAILED
        run.error = f"{exc}\n{traceback.format_exc(limit=8)}"
        run.finished_at = timezone.now()
        run.save()
        raise
    run.status = JobRun.Status.SUCCEEDED
    run.customers_processed = customers
    run.changes_made = changes
    run.detail = {**run.detail, **detail, "seconds": round(time.perf_counter() - started, 3)}
    run.finished_at = timezone.now()
    run.save()
    return run


def stalled_chunk_ids(older_than_seconds: float = 600) -> list[int]:
    """Pending chunks of running runs started long ago: re-enqueued by the refresh task, so
    a run whose worker died is finished by the next scheduled run."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        JobChunk.objects.filter(
            status=JobChunk.Status.PENDING,
            run__status=JobRun.Status.RUNNING,
            run__started_at__lt=cutoff,
        ).values_list("pk", flat=True)[:1000]
    )

"""CSV imports of customers and touchpoints: start one, run one.

How a file is imported (``import_run_execute``):

1. Stream the file (UTF-8, optional BOM) through ``csv.reader`` — never loaded whole — and
   check the header: missing, unknown and repeated column names reject the file up front.
2. Check every record cell by cell (``imports/rows.py``) and stage the good ones in a
   temporary table in batches (``COPY`` on PostgreSQL); record each problem as
   (row, column, value, message). Progress is written to the ``ImportRun`` after each batch.
3. Run the checks that need the database as set-based SQL over the staged rows (customer
   references; for customers, repeated external ids and new customers without a signup
   date).
4. Write the error file, sorted by row. All-or-nothing mode stops here if any row is bad.
5. Apply the good rows in ONE transaction, with the run's final counts: for touchpoints
   one ``INSERT … SELECT`` that also queues them for the engine; for customers an upsert
   that gives new customers their engine rows. A failure rolls all of it back.

Memory stays flat in file size: a batch of rows is the most held at once, and the error
file is streamed from the database. The file is never read twice.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import reset_queries, transaction
from django.utils import timezone

from customers.export import csv_cell
from imports import formats, load_customers, load_touchpoints
from imports.models import ImportRun
from imports.rows import RowError, future_skew
from imports.staging import Staging

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000  # rows staged per COPY / executemany: the unit of memory and progress
ERRORS_SAMPLE = 20  # errors kept on the run for the page; the error file has them all
STALE_AFTER = timedelta(minutes=15)  # a running import without a heartbeat this long is dead

LOADERS = {
    ImportRun.Kind.TOUCHPOINTS: load_touchpoints,
    ImportRun.Kind.CUSTOMERS: load_customers,
}

Progress = Callable[[int, int], None]  # (bytes read so far, rows read so far)


class FileRejected(Exception):
    """The file as a whole cannot be imported (encoding, header); nothing was staged."""

    def __init__(self, message: str, errors: list[RowError]) -> None:
        super().__init__(message)
        self.errors = errors


# --- starting -----------------------------------------------------------------------------


def import_start(
    *, kind: str, mode: str, upload: UploadedFile, source: str = "", user=None
) -> ImportRun:
    """Save an uploaded file and queue its import on a worker (after this transaction)."""
    from imports.tasks import import_task

    run = ImportRun(
        kind=kind,
        mode=mode,
        source=_source(kind, source),
        file_name=os.path.basename(upload.name or "upload.csv")[:255],
        file_size=upload.size or 0,
        created_by=user,
        origin="screen",
    )
    run.file.save(run.file_name, upload, save=False)
    run.save()
    transaction.on_commit(lambda: import_task.delay(run.pk))
    return run


def import_file(
    *,
    kind: str,
    path: str | Path,
    mode: str = ImportRun.Mode.ATOMIC,
    source: str = "",
    user=None,
    origin: str = "command",
    progress: Progress | None = None,
) -> ImportRun:
    """Import a local file in this process (management command, benchmark)."""
    path = Path(path)
    run = ImportRun.objects.create(
        kind=kind,
        mode=mode,
        source=_source(kind, source),
        file_name=str(path)[-255:],
        file_size=path.stat().st_size,
        created_by=user,
        origin=origin,
        status=ImportRun.Status.RUNNING,
        phase=ImportRun.Phase.READING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    with open(path, "rb") as stream:
        return _execute(run, stream, progress)


def _source(kind: str, source: str) -> str:
    if kind != ImportRun.Kind.TOUCHPOINTS:
        return ""
    return (source or "csv").strip()[:64] or "csv"


# --- running ------------------------------------------------------------------------------


def import_run_claim(run_id: int) -> bool:
    """Claim a queued run (or one whose worker died) for this worker; False if it is not ours
    to run — done, or running with a live heartbeat."""
    now = timezone.now()
    claimable = ImportRun.objects.filter(pk=run_id, status=ImportRun.Status.QUEUED) | (
        ImportRun.objects.filter(
            pk=run_id, status=ImportRun.Status.RUNNING, heartbeat_at__lt=now - STALE_AFTER
        )
    )
    return bool(
        claimable.update(
            status=ImportRun.Status.RUNNING, started_at=now, heartbeat_at=now, phase="reading"
        )
    )


def import_run_execute(*, run_id: int, progress: Progress | None = None) -> ImportRun | None:
    """Run a queued import (the Celery task's body); a second delivery does nothing."""
    if not import_run_claim(run_id):
        return None
    run = ImportRun.objects.get(pk=run_id)
    with default_storage.open(run.file.name, "rb") as stream:
        return _execute(run, stream, progress)


@dataclass
class _Read:
    rows_total: int = 0
    blank: int = 0


def _execute(run: ImportRun, stream: BinaryIO, progress: Progress | None) -> ImportRun:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    loader = LOADERS[run.kind]
    staging: Staging | None = None
    try:
        now = run.started_at or timezone.now()
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
        reader = csv.reader(text, strict=True)
        positions = _header(reader, stream, formats.FORMATS[run.kind])
        checker = loader.row_checker(positions, now=now, skew=future_skew())
        staging = Staging(run.pk, checker.staged_columns)
        staging.create()
        read = _read_rows(run, reader, stream, checker, staging, progress)
        timings["read_and_stage"] = time.perf_counter() - started

        _phase(run, ImportRun.Phase.VALIDATING, rows_total=read.rows_total)
        mark = time.perf_counter()
        staging.analyze()
        loader.validate(staging)
        rows_bad = staging.bad_rows()
        timings["validate"] = time.perf_counter() - mark

        mark = time.perf_counter()
        sample = _write_error_file(run, staging) if rows_bad else []
        timings["error_file"] = time.perf_counter() - mark
        run.rows_total, run.rows_bad = read.rows_total, rows_bad
        run.rows_ok = read.rows_total - rows_bad
        run.errors_sample = sample
        if rows_bad and run.mode == ImportRun.Mode.ATOMIC:
            run.message = _rejected_message(run, sample)
            return _finish(run, ImportRun.Status.REJECTED, started, timings)

        _phase(run, ImportRun.Phase.IMPORTING)
        mark = time.perf_counter()
        with transaction.atomic():
            applied = loader.apply(staging, source=run.source, rows_ok=run.rows_ok)
            timings["apply"] = time.perf_counter() - mark
            run.created_count = applied.created
            run.updated_count = applied.updated
            run.duplicate_count = applied.duplicates
            run.message = _done_message(run)
            _finish(run, ImportRun.Status.SUCCEEDED, started, timings)  # with the data
        timings["commit"] = time.perf_counter() - mark - timings["apply"]
        return _finish(run, ImportRun.Status.SUCCEEDED, started, timings)
    except FileRejected as rejected:
        if staging is None:
            staging = Staging(run.pk, [("row_no", "bigint")])
            staging.create()
        staging.write_errors(rejected.errors)
        sample = _write_error_file(run, staging)
        run.errors_sample = sample
        run.message = f"Nothing imported: {rejected}"
        return _finish(run, ImportRun.Status.REJECTED, started, timings)
    except Exception as exc:
        log.exception("import %s failed", run.pk)
        run.message = f"Import failed, nothing was imported: {exc}"[:2000]
        return _finish(run, ImportRun.Status.FAILED, started, timings)
    finally:
        if staging is not None:
            try:
                staging.drop()
            except Exception:  # the connection may be gone; temp tables go with it
                log.warning("could not drop staging tables of import %s", run.pk)


def _header(reader, stream: BinaryIO, fmt: formats.FileFormat) -> dict[str, int]:
    try:
        header = next(reader)
    except StopIteration:
        raise FileRejected(
            "the file is empty; the first row must be a header with the column names.",
            [RowError(1, "", "", "The file is empty: expected a header row.")],
        ) from None
    except UnicodeDecodeError as exc:
        raise _encoding_rejection(exc, stream) from None
    except csv.Error as exc:
        raise FileRejected(
            f"the header row is not valid CSV ({exc}).",
            [RowError(1, "", "", f"The header row is not valid CSV: {exc}")],
        ) from None
    positions, problems = formats.header_check(fmt, header)
    if problems:
        raise FileRejected(
            " ".join(p.message for p in problems[:3]),
            [RowError(1, p.column, p.column, p.message) for p in problems],
        )
    return positions


def _read_rows(run, reader, stream, checker, staging: Staging, progress) -> _Read:
    """Check every record and stage the good ones, a batch at a time."""
    read = _Read()
    batch: list[tuple[str, ...]] = []
    errors: list[RowError] = []
    stage, slow = checker.stage, checker.errors
    append = batch.append
    row_no = 1
    while True:
        try:
            for row in reader:
                row_no += 1
                staged = stage(row_no, row)
                if staged is not None:
                    append(staged)
                elif not any(row):  # a blank line or a row of empty cells: not data
                    read.blank += 1
                else:
                    staged, problems = slow(row_no, row)
                    if staged is not None:
                        append(staged)
                    errors.extend(problems)
                if len(batch) >= BATCH_ROWS:
                    _flush(run, staging, batch, errors, stream, row_no, read, progress)
                    batch, errors = [], []
                    append = batch.append
            break
        except csv.Error as exc:
            row_no += 1
            errors.append(RowError(row_no, "", "", f"not valid CSV: {exc}"))
        except UnicodeDecodeError as exc:
            raise _encoding_rejection(exc, stream) from None
    _flush(run, staging, batch, errors, stream, row_no, read, progress)
    read.rows_total = row_no - 1 - read.blank
    return read


def _flush(run, staging, batch, errors, stream, row_no, read, progress) -> None:
    staging.write(batch, errors)
    reset_queries()  # with DEBUG on, Django would keep every batch's SQL: not flat memory
    try:
        position = stream.tell()
    except (OSError, ValueError):
        position = 0
    rows_done = row_no - 1 - read.blank
    now = timezone.now()
    ImportRun.objects.filter(pk=run.pk).update(
        bytes_read=position, rows_done=rows_done, heartbeat_at=now
    )
    if progress is not None:
        progress(position, rows_done)


def _encoding_rejection(exc: UnicodeDecodeError, stream: BinaryIO) -> FileRejected:
    """The whole file is refused: a file that is not UTF-8 (typically Latin-1 or UTF-16 from
    a spreadsheet) would import garbled text in every non-ASCII cell, bad row or not."""
    byte = exc.object[exc.start : exc.start + 1].hex().upper()
    line = _line_of_bad_byte(exc, stream)
    where = f"on line {line}" if line else "in the file"
    message = (
        f"the file is not UTF-8 text (byte 0x{byte} {where}). Save it as 'CSV UTF-8' "
        f"(in Excel: File › Save As › CSV UTF-8) and import it again."
    )
    return FileRejected(message, [RowError(line or 0, "", f"0x{byte}", message)])


def _line_of_bad_byte(exc: UnicodeDecodeError, stream: BinaryIO) -> int | None:
    """Line number of the undecodable byte: the decoder saw the chunk ending at the stream's
    position, so its offset is known; count newlines up to it (failure path only)."""
    try:
        offset = stream.tell() - len(exc.object) + exc.start
        stream.seek(0)
        line, remaining = 1, offset
        while remaining > 0:
            block = stream.read(min(1 << 20, remaining))
            if not block:
                break
            line += block.count(b"\n")
            remaining -= len(block)
        return line
    except (OSError, ValueError):
        return None


def _phase(run: ImportRun, phase: str, **fields) -> None:
    run.phase = phase
    for name, value in fields.items():
        setattr(run, name, value)
    ImportRun.objects.filter(pk=run.pk).update(phase=phase, heartbeat_at=timezone.now(), **fields)


def _write_error_file(run: ImportRun, staging: Staging) -> list[dict]:
    """Stream every row error, in file order, to the run's error file; return the first few
    for the page. Cells are neutralized against spreadsheet formula injection."""
    sample: list[dict] = []
    with tempfile.TemporaryFile("w+b") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(["row", "column", "value", "message"])
        for row_no, column, value, message in staging.iter_errors():
            writer.writerow([row_no, csv_cell(column), csv_cell(value), csv_cell(message)])
            if len(sample) < ERRORS_SAMPLE:
                sample.append({"row": row_no, "column": column, "value": value, "message": message})
        text.flush()
        raw.seek(0)
        run.error_file.save(f"import-{run.pk}-errors.csv", File(raw), save=False)
        text.detach()
    ImportRun.objects.filter(pk=run.pk).update(error_file=run.error_file.name)
    return sample


def _rejected_message(run: ImportRun, sample: list[dict]) -> str:
    first = sample[0] if sample else None
    where = f" The first is on row {first['row']}: {first['message'].rstrip('.')}." if first else ""
    return (
        f"Nothing imported: {run.rows_bad:,} of {run.rows_total:,} rows have errors.{where} "
        f"Download the error file for all of them, fix the rows and import again, or choose "
        f"'Skip bad rows' to import the good ones."
    )


def _done_message(run: ImportRun) -> str:
    if run.kind == ImportRun.Kind.TOUCHPOINTS:
        what = (
            f"{run.created_count:,} touchpoints created, {run.duplicate_count:,} duplicates "
            f"(ids already imported under source {run.source!r})"
        )
    else:
        what = (
            f"{run.created_count:,} customers created, {run.updated_count:,} updated, "
            f"{run.duplicate_count:,} unchanged"
        )
    skipped = f"; {run.rows_bad:,} bad rows skipped (see the error file)" if run.rows_bad else ""
    return f"Imported {run.rows_ok:,} of {run.rows_total:,} rows: {what}{skipped}."


def _finish(run: ImportRun, status: str, started: float, timings: dict) -> ImportRun:
    run.status = status
    run.phase = ImportRun.Phase.DONE
    run.finished_at = timezone.now()
    timings["total"] = time.perf_counter() - started
    run.timings = {k: round(v, 3) for k, v in timings.items()}
    run.heartbeat_at = run.finished_at
    if run.rows_total is not None:
        run.rows_done = run.rows_total
    run.bytes_read = run.file_size
    run.save(
        update_fields=[
            "status",
            "phase",
            "finished_at",
            "timings",
            "heartbeat_at",
            "rows_total",
            "rows_done",
            "rows_ok",
            "rows_bad",
            "bytes_read",
            "created_count",
            "updated_count",
            "duplicate_count",
            "message",
            "errors_sample",
            "error_file",
        ]
    )
    return run

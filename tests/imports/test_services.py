"""Claiming runs, progress as the file streams in, and memory flat in file size."""

import tracemalloc
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from imports import load_touchpoints, services
from imports.models import ImportRun
from tests.imports.conftest import TOUCHPOINT_HEADER

pytestmark = pytest.mark.django_db


def queued_run(content: str, **fields) -> ImportRun:
    run = ImportRun(kind="touchpoints", file_name="f.csv", source="csv", **fields)
    run.file.save("f.csv", ContentFile(content.encode()), save=False)
    run.file_size = len(content)
    run.save()
    return run


def test_a_run_is_claimed_once_unless_its_worker_died(customers):
    content = TOUCHPOINT_HEADER + "e1,cust-a,login,2026-06-01T12:00:00Z,\n"
    run = queued_run(content)
    assert services.import_run_execute(run_id=run.pk).status == "succeeded"
    assert services.import_run_execute(run_id=run.pk) is None  # redelivered: done already
    busy = queued_run(content, status="running", heartbeat_at=timezone.now())
    assert services.import_run_execute(run_id=busy.pk) is None  # another worker has it
    dead = queued_run(
        content, status="running", heartbeat_at=timezone.now() - timedelta(minutes=20)
    )
    assert services.import_run_execute(run_id=dead.pk).status == "succeeded"


def lines(n: int) -> str:
    return TOUCHPOINT_HEADER + "".join(
        f"e{i},cust-{'abc'[i % 3]},login,2026-05-{1 + i % 28:02d}T12:00:00Z,\n" for i in range(n)
    )


def test_progress_is_written_to_the_run_as_the_file_streams_in(
    customers, run_import, monkeypatch, tmp_path
):
    monkeypatch.setattr(services, "BATCH_ROWS", 1_000)
    path = tmp_path / "big.csv"
    path.write_text(lines(4_500))
    seen = []

    def progress(bytes_read: int, rows_done: int) -> None:
        run = ImportRun.objects.get()
        seen.append((rows_done, run.rows_done, run.bytes_read > 0, run.phase))

    run = services.import_file(kind="touchpoints", path=path, progress=progress)
    assert run.created_count == 4_500
    assert [s[0] for s in seen] == [1_000, 2_000, 3_000, 4_000, 4_500]
    assert all(rows == stored and grew and phase == "reading" for rows, stored, grew, phase in seen)


def test_peak_memory_does_not_grow_with_the_file(customers, monkeypatch, tmp_path):
    """Batches small enough that a few of them make a file: 1,000 vs 7,000 rows."""
    monkeypatch.setattr(services, "BATCH_ROWS", 300)
    monkeypatch.setattr(load_touchpoints, "SQLITE_BATCH", 150)

    def peak(n: int, source: str) -> int:
        path = tmp_path / f"{source}.csv"
        path.write_text(lines(n))
        tracemalloc.start()
        run = services.import_file(kind="touchpoints", path=path, source=source)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert run.created_count == n
        return top

    peak(1_000, "warm-up")  # first-use caches (SQL compilers, statements) are not the file
    small, large = peak(1_000, "small"), peak(7_000, "large")
    # Holding the 6,000 extra rows would take ~3 MB (≈500 bytes per staged row).
    assert large - small < 300 * 1024, (small, large)

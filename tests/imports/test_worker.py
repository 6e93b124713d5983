"""A real Celery worker runs an import uploaded on the screen; the page follows it."""

import time
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from customers.engagement import engine_rows_ensure
from customers.models import PendingTouchpoint, Touchpoint
from imports import services
from imports.models import ImportRun
from imports.tasks import import_task
from tests.factories import CustomerFactory
from tests.imports.conftest import TOUCHPOINT_HEADER
from tests.workers import shared_database_url, worker_start

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


@pytest.fixture
def worker_queue(settings, media_in_tmp, monkeypatch):
    if not settings.CELERY_BROKER_URL:
        pytest.skip("no Celery broker configured")
    queue = f"test-import-{uuid.uuid4().hex[:6]}"
    # The screen sends the task as usual; here it goes to this test's private queue.
    monkeypatch.setattr(
        import_task, "delay", lambda run_id: import_task.apply_async(args=[run_id], queue=queue)
    )
    process = worker_start(
        queue, env={"DATABASE_URL": shared_database_url(), "MEDIA_ROOT": str(media_in_tmp)}
    )
    yield queue
    process.terminate()
    process.wait(30)


def test_worker_imports_an_uploaded_file_and_the_page_follows(client, marketer, worker_queue):
    customers = [CustomerFactory(external_id=f"w-{i}") for i in range(20)]
    engine_rows_ensure([c.pk for c in customers])
    lines = [f"e{i},w-{i % 20},login,2026-06-01T12:{i % 60:02d}:00Z," for i in range(3_000)]
    content = TOUCHPOINT_HEADER + "\n".join(lines) + "\nbad,w-1,login,yesterday,\n"
    client.force_login(marketer)
    response = client.post(
        reverse("imports"),
        {
            "kind": "touchpoints",
            "mode": "skip",
            "source": "worker-test",
            "file": SimpleUploadedFile("events.csv", content.encode(), content_type="text/csv"),
        },
    )
    run = ImportRun.objects.get()
    assert response.url == reverse("import-detail", args=[run.pk])
    deadline = time.monotonic() + 90
    while True:
        page = client.get(reverse("import-status", args=[run.pk])).content.decode()
        if "hx-trigger" not in page:
            break
        assert time.monotonic() < deadline, "the worker did not finish the import"
        time.sleep(0.3)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.message
    assert (run.rows_total, run.created_count, run.rows_bad) == (3_001, 3_000, 1)
    assert "Imported 3,000 of 3,001 rows" in page and "Download the error file" in page
    assert Touchpoint.objects.filter(source="worker-test").count() == 3_000
    assert PendingTouchpoint.objects.count() == 3_000
    # A second delivery of the same task (the broker redelivers) does nothing.
    finished_at = run.finished_at
    import_task.apply_async(args=[run.pk], queue=worker_queue)
    assert services.import_run_execute(run_id=run.pk) is None
    time.sleep(2)
    run.refresh_from_db()
    assert run.finished_at == finished_at and Touchpoint.objects.count() == 3_000

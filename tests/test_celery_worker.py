"""A real Celery worker, started by the test on the configured broker, runs a task."""

import subprocess
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from lifecycle.celery import app, ping
from tests.workers import worker_start

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker_queue():
    if not settings.CELERY_BROKER_URL:
        pytest.skip("no Celery broker configured")
    if not settings.CELERY_RESULT_BACKEND:
        pytest.skip("no result backend to read the answer from")
    # A private queue, so a developer's running worker cannot take the test's task.
    queue = f"test-{uuid.uuid4().hex[:8]}"
    process = worker_start(queue, capture=True)
    yield queue
    process.terminate()
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    print(output)


def test_real_worker_runs_a_task_on_the_configured_broker(worker_queue):
    token = uuid.uuid4().hex
    result = ping.apply_async(args=[token], queue=worker_queue)
    assert result.get(timeout=90) == token
    assert app.conf.broker_url == settings.CELERY_BROKER_URL

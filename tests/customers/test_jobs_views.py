from datetime import UTC, datetime

import pytest
from django.urls import reverse

from customers.models import JobRun

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("user_fixture", "status"), [("admin_user", 200), ("marketer", 403), ("cs_user", 403)]
)
def test_only_admins_watch_jobs(request, login, user_fixture, status):
    client = login(request.getfixturevalue(user_fixture))
    assert client.get(reverse("jobs")).status_code == status
    assert client.get(reverse("jobs-table")).status_code == status


def test_table_polls_itself_only_while_a_job_runs(login, admin_user):
    client = login(admin_user)
    JobRun.objects.create(
        kind="rescore",
        status="succeeded",
        started_at=T0,
        finished_at=T0,
        chunks_total=4,
        chunks_done=4,
    )
    idle = client.get(reverse("jobs-table")).content.decode()
    assert "hx-trigger" not in idle
    JobRun.objects.create(
        kind="rescore",
        status="running",
        started_at=T0,
        chunks_total=4,
        chunks_done=1,
        detail={"reason": "weight change"},
    )
    busy = client.get(reverse("jobs-table")).content.decode()
    assert 'hx-trigger="every 2s"' in busy
    assert 'aria-valuenow="25"' in busy and "1/4" in busy and "weight change" in busy


def test_start_buttons_send_the_task(login, admin_user, monkeypatch):
    from lifecycle.celery import app

    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, kwargs: sent.append((name, kwargs)))
    client = login(admin_user)
    response = client.post(reverse("jobs-start"), {"kind": "rescore"}, follow=True)
    assert sent == [
        (
            "customers.rescore",
            {"full": True, "reason": "started by hand", "triggered_by": admin_user.username},
        )
    ]
    assert "Started: rescore" in response.content.decode()
    response = client.post(reverse("jobs-start"), {"kind": "drop-tables"}, follow=True)
    assert "Unknown job" in response.content.decode() and len(sent) == 1


def test_start_needs_post(login, admin_user):
    assert login(admin_user).get(reverse("jobs-start")).status_code == 405

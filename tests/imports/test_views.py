"""The upload screen: roles, upload → task → result page, progress polling, downloads."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from customers.models import Touchpoint
from imports.models import ImportRun
from lifecycle.celery import app
from tests.imports.conftest import TOUCHPOINT_HEADER

pytestmark = pytest.mark.django_db

GOOD = TOUCHPOINT_HEADER + "e1,cust-a,login,2026-06-01T12:00:00Z,\n"
BAD = GOOD + "e2,cust-b,login,2026-06-01T12:00:00,\n"


def upload(content: str, name: str = "events.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode(), content_type="text/csv")


@pytest.fixture
def eager():
    """Tasks run inline when sent (the worker tests use a real worker)."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def test_marketers_and_admins_import_customer_success_does_not(
    login, marketer, admin_user, cs_user
):
    run = ImportRun.objects.create(kind="touchpoints", file_name="x.csv", status="succeeded")
    urls = [
        reverse("imports"),
        reverse("import-list"),
        reverse("import-detail", args=[run.pk]),
        reverse("import-status", args=[run.pk]),
        reverse("import-example", args=["touchpoints"]),
    ]
    for user, status in ((marketer, 200), (admin_user, 200), (cs_user, 403)):
        client = login(user)
        assert [client.get(url).status_code for url in urls] == [status] * len(urls)
    cs = login(cs_user)
    response = cs.post(reverse("imports"), {"kind": "touchpoints", "mode": "atomic"})
    assert response.status_code == 403
    assert not ImportRun.objects.exclude(pk=run.pk).exists()


def test_anonymous_users_are_sent_to_login(client):
    response = client.get(reverse("imports"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_nav_link_for_marketers_only(login, marketer, cs_user):
    assert 'href="/imports/"' in login(marketer).get(reverse("home")).content.decode()
    assert 'href="/imports/"' not in login(cs_user).get(reverse("home")).content.decode()


def test_upload_queues_the_import_after_commit_and_shows_the_result(
    login, marketer, customers, eager, django_capture_on_commit_callbacks
):
    client = login(marketer)
    form = {"kind": "touchpoints", "mode": "atomic", "source": "crm", "file": upload(GOOD)}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("imports"), form)
    run = ImportRun.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("import-detail", args=[run.pk])
    assert (run.status, run.created_by, run.source, run.file_name) == (
        "queued",
        marketer,
        "crm",
        "events.csv",
    )
    assert len(callbacks) == 1 and not Touchpoint.objects.exists()  # nothing before commit
    waiting = client.get(reverse("import-status", args=[run.pk])).content.decode()
    assert 'hx-trigger="every 1s"' in waiting and "Waiting for a worker" in waiting
    callbacks[0]()  # the commit: the task is sent (and runs inline here)
    run.refresh_from_db()
    assert run.status == "succeeded" and Touchpoint.objects.filter(source="crm").count() == 1
    done = client.get(reverse("import-detail", args=[run.pk])).content.decode()
    assert "hx-trigger" not in done
    assert "Imported 1 of 1 rows: 1 touchpoints created" in done


def test_a_rejected_import_lists_errors_and_serves_the_error_file(
    login, marketer, customers, eager, django_capture_on_commit_callbacks
):
    client = login(marketer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("imports"), {"kind": "touchpoints", "mode": "atomic", "file": upload(BAD)}
        )
    run = ImportRun.objects.get()
    page = client.get(reverse("import-detail", args=[run.pk])).content.decode()
    assert "Rejected" in page and "Nothing imported: 1 of 2 rows have errors." in page
    assert "has no time zone" in page
    assert reverse("import-errors", args=[run.pk]) in page
    download = client.get(reverse("import-errors", args=[run.pk]))
    assert download["Content-Type"] == "text/csv"
    assert "attachment" in download["Content-Disposition"]
    body = b"".join(download.streaming_content).decode()
    assert body.splitlines()[0] == "row,column,value,message"
    assert body.splitlines()[1].startswith("3,occurred_at,2026-06-01T12:00:00,")


def test_list_polls_while_an_import_is_active(login, marketer):
    client = login(marketer)
    ImportRun.objects.create(kind="customers", file_name="done.csv", status="succeeded")
    assert "hx-trigger" not in client.get(reverse("import-list")).content.decode()
    ImportRun.objects.create(
        kind="touchpoints",
        file_name="big.csv",
        status="running",
        phase="reading",
        file_size=1000,
        bytes_read=500,
        rows_done=12345,
    )
    busy = client.get(reverse("import-list")).content.decode()
    assert 'hx-trigger="every 2s"' in busy
    assert 'aria-valuenow="44"' in busy and "12,345…" in busy and "big.csv" in busy


def test_form_errors_are_shown(login, marketer, settings):
    client = login(marketer)
    page = client.post(reverse("imports"), {"kind": "touchpoints", "mode": "atomic"})
    assert page.status_code == 200 and "This field is required." in page.content.decode()
    settings.IMPORT_MAX_UPLOAD_MB = 0
    too_big = client.post(
        reverse("imports"), {"kind": "touchpoints", "mode": "atomic", "file": upload(GOOD)}
    )
    assert "the limit is 0 MB" in too_big.content.decode()
    assert not ImportRun.objects.exists()


def test_no_error_file_is_a_404(login, marketer):
    run = ImportRun.objects.create(kind="touchpoints", file_name="x.csv", status="succeeded")
    assert login(marketer).get(reverse("import-errors", args=[run.pk])).status_code == 404


def test_example_files_have_the_header(login, marketer):
    client = login(marketer)
    body = client.get(reverse("import-example", args=["touchpoints"])).content.decode()
    assert body.splitlines()[0] == "customer_external_id,type,occurred_at,id,value,properties"
    body = client.get(reverse("import-example", args=["customers"])).content.decode()
    assert body.startswith("external_id,email,name,")
    assert client.get(reverse("import-example", args=["orders"])).status_code == 404

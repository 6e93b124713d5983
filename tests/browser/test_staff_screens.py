"""Renewal risk, settings and jobs in a real Chromium against the live server."""

import re

import pytest

from customers import jobs
from customers.models import JobRun
from success.models import CustomerNote
from tests.browser.conftest import BROWSER_DB, assert_charts_render, screenshot

pytestmark = [pytest.mark.browser, BROWSER_DB]


@pytest.fixture
def eager_tasks():
    """No worker runs in browser tests: tasks a request starts (the rescore a save starts)
    run eagerly in the live server's thread, through the same task code a worker runs."""
    from lifecycle.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.mark.parametrize(
    ("username", "visible", "hidden"),
    [
        (
            "admin",
            ["Dashboard", "Customers", "Segments", "Renewal risk", "Settings", "Jobs"],
            [],
        ),
        ("success", ["Customers", "Renewal risk"], ["Dashboard", "Segments", "Settings", "Jobs"]),
        ("marketer", ["Dashboard", "Customers", "Segments"], ["Renewal risk", "Settings", "Jobs"]),
    ],
)
def test_each_role_logs_in_and_sees_its_navigation(staff, page_as, username, visible, hidden):
    page = page_as(username)
    nav = page.locator("nav.nav")
    for label in visible:
        assert nav.get_by_role("link", name=label, exact=True).count() == 1, label
    for label in hidden:
        assert nav.get_by_role("link", name=label, exact=True).count() == 0, label
    assert page.js_errors == []
    if "Renewal risk" in hidden:
        assert page.goto("/renewal-risk/").status == 403
        assert "does not give access" in page.content()


def test_cs_marks_an_account_contacted_and_sees_the_note(seeded, page_as):
    page = page_as("cs.alex")
    page.goto("/renewal-risk/")
    rows = page.locator("tr.risk-row")
    assert rows.count() > 0
    assert re.search(r"score \d+", rows.first.locator(".reason").inner_text())
    page.check("#id_mine")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"mine=on"))
    owners = page.locator("tr.risk-row td:nth-child(2)").all_inner_texts()
    assert owners and set(owners) == {"Alex (CS)"}
    screenshot(page, "renewal-risk")

    row = page.locator("tr.risk-row").first
    customer_id = int(row.get_attribute("data-customer"))
    row.locator("summary").click()
    row.locator("textarea[name=body]").fill("Left a voicemail; call back Friday")
    row.get_by_role("button", name="Mark contacted (call)").click()
    row.locator(".notes li", has_text="Left a voicemail").wait_for()
    note = CustomerNote.objects.get(customer_id=customer_id)
    assert note.author.username == "cs.alex" and note.touchpoint.type.key == "cs_call"

    page.reload()
    again = page.locator(f"tr.risk-row[data-customer='{customer_id}']")
    assert "Left a voicemail" in again.locator(".notes").inner_text()
    assert page.js_errors == []


def test_admin_previews_a_weight_change_saves_it_and_watches_the_job(seeded, page_as, eager_tasks):
    page = page_as("admin")
    page.goto("/settings/")
    page.locator("tr[data-type=purchase] input[name$=weight]").fill("30")
    page.locator("#id_engine-cooling_multiple").fill("1.2")
    page.get_by_role("button", name="Preview impact").click()
    summary = page.locator("[data-testid=preview-summary]")
    summary.wait_for()
    assert re.search(r"[1-9][\d,]* of 200 customers would change stage", summary.inner_text())
    assert page.locator("#preview-result table tbody tr").count() >= 1
    assert_charts_render(page)
    screenshot(page, "settings-preview")

    page.get_by_role("button", name="Save").click()
    page.locator(".messages li", has_text="A full recompute has started").wait_for()
    assert page.locator("table", has_text="cooling_multiple").count() == 1  # audit list
    page.get_by_role("link", name="watch its progress on the Jobs page").click()
    first = page.locator("#jobs-table tbody tr").first
    assert "Full rescore" in first.inner_text() and "purchase" in first.inner_text()
    assert "Succeeded" in first.locator(".badge").inner_text()
    assert page.js_errors == []


def test_jobs_progress_bar_refreshes_itself_while_a_run_runs(staff, page_as):
    from tests.factories import CustomerFactory

    for _ in range(3):
        CustomerFactory()
    run = jobs.rescore_start(full=True, reason="browser test", triggered_by="admin")
    page = page_as("admin")
    page.goto("/jobs/")
    row = page.locator("#jobs-table tbody tr").first
    assert "Running" in row.inner_text()
    assert row.locator(".progress").get_attribute("aria-valuenow") == "0"
    page.evaluate("window.__not_reloaded = true")
    screenshot(page, "jobs-running")
    jobs.run_inline(run)  # a worker's part, done here while the page watches
    assert JobRun.objects.get(pk=run.pk).status == JobRun.Status.SUCCEEDED
    page.locator("#jobs-table tbody tr").first.locator(".badge", has_text="Succeeded").wait_for(
        timeout=8_000
    )
    assert page.evaluate("window.__not_reloaded") is True  # htmx swapped the table in place
    assert page.locator("#jobs-table").get_attribute("hx-trigger") is None  # polling stopped
    assert page.js_errors == []

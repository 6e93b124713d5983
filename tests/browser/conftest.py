"""Shared fixtures for browser tests: Debian's Chromium driven by Playwright against
pytest-django's live server, with demo data seeded in the test database.

Use them from any screen's tests::

    pytestmark = [pytest.mark.browser, BROWSER_DB]

    def test_it(seeded, page_as):
        page = page_as("admin")          # logged in through the real login form
        page.goto("/renewal-risk/")
        assert_charts_render(page)

Every page opened through ``page_as`` records JS console errors and uncaught exceptions in
``page.js_errors``; ``assert_charts_render`` checks them along with the charts.
Screenshots: ``screenshot(page, "name")`` writes docs/screenshots/name.png when
``LIFECYCLE_SCREENSHOTS=1`` (so an ordinary test run leaves the repository unchanged).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PASSWORD = "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Live-server tests commit for real and the database is flushed after each. Serialized
# rollback does not restore migration rows around pytest-django's live server (observed with
# Django 5.2), so these tests put back what they need (``_migration_rows_ensure``) and run
# last in the session (``pytest_collection_modifyitems``), leaving no test after them that
# expects the migration rows.
BROWSER_DB = pytest.mark.django_db(transaction=True)
DEMO_CUSTOMERS = 200
DEMO_HISTORY_DAYS = 31  # >30 so the nightly pass has a snapshot to compute 30-day trends


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list) -> None:
    """Browser tests last (after pytest-django's own ordering); see ``BROWSER_DB``."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Playwright's sync API keeps an asyncio loop in this thread; Django would then refuse
    the tests' own (synchronous, single-threaded) ORM calls, which are safe here. Allowed
    for the whole run of each browser test (setup, call, and the teardown that flushes the
    database) and for nothing else: the variable never reaches other tests' subprocesses."""
    if item.get_closest_marker("browser") is None:  # hooks here see every test's items
        yield
        return
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """One Chromium per test module. Not per session: while Playwright runs, its event loop
    makes Django refuse ORM calls in this thread, so it must stop before other tests run."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}: `make test` installs it (apt).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


def _migration_rows_ensure() -> None:
    """The rows data migrations create (touchpoint types, settings, role groups, tracking's
    default event mappings).

    Browser tests start from a flushed database (see ``BROWSER_DB``); idempotent.
    """
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import Group

    from customers.roles import Role

    defaults = importlib.import_module("customers.migrations.0002_defaults_and_roles")
    defaults.create_defaults(apps, None)
    mappings = importlib.import_module("tracking.migrations.0002_default_mappings")
    mappings.create_mappings(apps, None)
    for role in Role:
        Group.objects.get_or_create(name=role.value)


@pytest.fixture
def staff(transactional_db) -> dict[str, object]:
    """One user per role (password ``PASSWORD``): admin, marketer, success (no accounts)."""
    from customers.roles import Role
    from tests.factories import UserFactory

    _migration_rows_ensure()
    return {
        "admin": UserFactory(username="admin", first_name="Avery", roles=[Role.ADMIN]),
        "marketer": UserFactory(username="marketer", first_name="Morgan", roles=[Role.MARKETER]),
        "success": UserFactory(
            username="success", first_name="Casey", roles=[Role.CUSTOMER_SUCCESS]
        ),
    }


@pytest.fixture
def seeded(staff) -> dict[str, object]:
    """Demo customers with a month of engine history (stages, snapshots, trends); accounts
    are owned by the demo CS users ``cs.alex`` … (password ``PASSWORD``)."""
    from customers.demo import (
        demo_default_as_of,
        demo_history_replay,
        demo_owners_ensure,
        demo_seed,
    )

    owners = demo_owners_ensure(PASSWORD)
    demo_seed(customers=DEMO_CUSTOMERS, seed=3, owner_ids=owners)
    demo_history_replay(days=DEMO_HISTORY_DAYS, as_of=demo_default_as_of())
    return staff


@pytest.fixture
def page_as(browser, live_server) -> Iterator[Callable]:
    """``page_as(username)``: a new browser context logged in through the login form."""
    contexts = []

    def open_page(username: str, password: str = PASSWORD):
        context = browser.new_context(
            base_url=live_server.url, viewport={"width": 1440, "height": 900}
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.js_errors = []
        page.on(
            "console",
            lambda m: page.js_errors.append(m.text) if m.type == "error" else None,
        )
        page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
        page.goto("/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_selector("header.topbar")
        return page

    yield open_page
    for context in contexts:
        context.close()


def assert_charts_render(page, *, at_least: int = 1) -> None:
    """Every plotly chart on the page drew an SVG or canvas, and no JS error happened."""
    page.wait_for_function("() => window.Plotly !== undefined")
    charts = page.locator(".plotly-graph-div")
    assert charts.count() >= at_least, "expected a chart on the page"
    for i in range(charts.count()):
        charts.nth(i).locator("svg.main-svg, canvas").first.wait_for(state="attached")
    assert page.js_errors == []


def screenshot(page, name: str, *, element: str | None = None) -> None:
    """The whole page (or the ``element`` selector) into docs/screenshots/<name>.png, when
    ``LIFECYCLE_SCREENSHOTS=1``."""
    if os.environ.get("LIFECYCLE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = str(SCREENSHOTS / f"{name}.png")
        if element:
            page.locator(element).screenshot(path=path)
            return
        page.evaluate("window.scrollTo(0, 0)")  # else the sticky header lands mid-page
        page.screenshot(path=path, full_page=True)

"""The tracking settings screen in a real Chromium: htmx actions, the key shown once.

Moved here from tests/tracking/ onto the shared browser fixtures: they flush the database
after each test and put back what data migrations create (event mappings included)."""

import base64
import json

import pytest
from django.test import Client

from customers.models import Touchpoint
from tests.browser.conftest import BROWSER_DB, screenshot

pytestmark = [pytest.mark.browser, BROWSER_DB]


def post_batch(key: str, batch: list) -> None:
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    response = Client().post(
        "/v1/batch",
        json.dumps({"batch": batch}),
        content_type="application/json",
        HTTP_AUTHORIZATION=auth,
    )
    assert response.status_code == 200, response.content


def test_admin_adds_a_source_sends_and_maps_an_event(staff, page_as):
    page = page_as("admin")
    page.goto("/settings/tracking/")
    page.fill("#id_name", "Website (Segment)")
    page.click("text=Add source")
    key = page.locator("[data-testid=new-key]").inner_text()
    assert key.startswith("lcwk_")
    screenshot(page, "tracking-new-key", element="#sources")

    post_batch(
        key,
        [
            {"type": "track", "userId": f"u{i}", "event": "Report Exported", "messageId": f"r{i}"}
            for i in range(4)
        ]
        + [
            {"type": "track", "userId": "u9", "event": "Seat Added", "messageId": "s1"},
            {"type": "page", "anonymousId": "a1", "name": "Pricing", "messageId": "p1"},
            {"type": "track", "userId": "u1", "event": "x", "timestamp": "2026-05-01T10:00:00"},
        ],
    )
    page.reload()
    assert key not in page.content()  # shown once only
    row = page.locator("#events tr", has_text="Report Exported")
    assert "4" in row.inner_text()
    assert "has no time zone" in page.locator("#rejected").inner_text()
    screenshot(page, "tracking")

    row.locator("select").select_option("product_use")
    row.locator("text=Map").click()
    page.wait_for_selector("text=now becomes")
    assert "Report Exported" in page.locator("#events").inner_text()
    assert Touchpoint.objects.filter(type__key="page_view").count() == 1
    assert page.js_errors == []

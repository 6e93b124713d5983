"""Dashboard, customers and segments in a real Chromium against the live server: every chart
draws (an SVG is present, no JS error), filters refresh results in place, the segment
builder's live count follows the filters and the saved segment has that size."""

import re

import pytest

from segments.models import Segment
from segments.services import segment_save
from tests.browser.conftest import BROWSER_DB, assert_charts_render, screenshot

pytestmark = [pytest.mark.browser, BROWSER_DB]


def _number(text: str) -> int:
    return int(re.search(r"[\d,]+", text).group().replace(",", ""))


def test_marketer_sees_every_dashboard_chart(seeded, page_as):
    page = page_as("marketer")
    page.goto("/")
    assert_charts_render(page, at_least=4)  # stage bar, stage flow, histogram, trend lines
    assert "figures as of" in page.locator("[data-testid=summary-as-of]").inner_text()
    tiles = page.locator(".tiles .tile-value").all_inner_texts()
    assert sum(_number(t) for t in tiles) == 200  # every demo customer has a stage
    screenshot(page, "home")


def test_filter_customers_and_open_one(seeded, page_as):
    page = page_as("marketer")
    page.goto("/customers/")
    everyone = _number(page.locator(".results-head strong").inner_text())
    page.get_by_label("At risk", exact=True).check()
    page.wait_for_url(re.compile(r"stage=at_risk"))  # htmx pushed the filtered URL
    page.locator(".results-head", has_text="match these filters").wait_for()
    at_risk = _number(page.locator(".results-head strong").inner_text())
    assert 0 < at_risk < everyone
    stages = page.locator("#customer-table .stage-badge").all_inner_texts()
    assert stages and set(stages) == {"At risk"}
    screenshot(page, "customers")

    first = page.locator("#customer-table tbody tr a").first
    name = first.inner_text()
    first.click()
    page.wait_for_url(re.compile(r"/customers/\d+/$"))
    assert name in page.locator("h1").inner_text()
    assert_charts_render(page, at_least=3)  # gauge, score history, stage and touchpoints
    screenshot(page, "customer")


def test_build_a_segment_watch_its_live_count_and_save_it(seeded, page_as):
    page = page_as("marketer")
    page.goto("/segments/new/")
    count = page.locator("#live-count-value strong")
    everyone = _number(count.inner_text())
    page.get_by_label("At risk", exact=True).check()
    page.get_by_label("Cooling", exact=True).check()
    page.wait_for_function(
        "n => Number(document.querySelector('#live-count-value strong')"
        ".innerText.replace(/,/g, '')) !== n",
        arg=everyone,
    )
    slipping = _number(count.inner_text())
    assert 0 < slipping < everyone
    page.fill("#id_name", "Slipping")
    screenshot(page, "segment-builder")
    page.get_by_role("button", name="Save segment").click()
    page.wait_for_url(re.compile(r"/segments/\d+/$"))
    assert _number(page.locator("#segment-size").inner_text()) == slipping
    assert_charts_render(page, at_least=2)  # stage mix, score distribution (+ size trend)
    screenshot(page, "segment")

    saved = Segment.objects.get(name="Slipping")
    assert sorted(saved.params["stage"]) == ["at_risk", "cooling"]
    other = segment_save(
        name="Europe", description="", params={"region": "Europe"}, user=saved.created_by
    )
    page.goto("/segments/")
    assert page.locator("table", has_text="Slipping").count() == 1
    assert_charts_render(page)  # size trend
    screenshot(page, "segments")
    page.goto(f"/segments/compare/?a={saved.pk}&b={other.pk}")
    assert_charts_render(page, at_least=2)
    screenshot(page, "segment-compare")

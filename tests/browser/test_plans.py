"""Plans in a real Chromium: build a three-step plan, launch it on a segment with a holdout,
run the plan tick (inline: no worker in browser tests) and see the enrollments."""

import re

import pytest
from django.core import mail

from campaigns.models import Enrollment, Plan
from tests.browser.conftest import BROWSER_DB, assert_charts_render, screenshot

pytestmark = [pytest.mark.browser, BROWSER_DB]


@pytest.fixture
def segment(seeded):
    from segments.services import segment_save

    return segment_save(
        name="Cooling or at risk",
        description="",
        params={"stage": ["cooling", "at_risk"]},
        user=seeded["marketer"],
    )


def _add_step(page, action: str, delay: str, fields: dict[str, str]) -> None:
    form = page.locator("#step-form")
    if not form.is_visible():
        page.locator("details.add-step summary").click()
    form.locator("[name=action]").select_option(action)
    form.locator("[name=delay_days]").fill(delay)
    for name, value in fields.items():
        form.locator(f"[name={name}]").fill(value)
    count = page.locator("ol.ladder li.step").count()
    form.get_by_role("button", name="Add step").click()
    page.wait_for_function(
        f"() => document.querySelectorAll('ol.ladder li.step').length === {count + 1}"
    )


def test_marketer_builds_launches_and_sees_enrollments(segment, page_as, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    page = page_as("marketer")
    # The segments screen's entry point leads to the plan screens.
    page.goto(f"/segments/{segment.pk}/")
    page.get_by_role("link", name="Launch a plan on this segment").click()
    page.get_by_role("link", name="New plan for this segment").click()
    page.fill("#id_name", "Win back the cooling")
    assert page.locator("#id_trigger_kind").input_value() == "segment_once"
    page.get_by_role("button", name="Create plan and add steps").click()
    page.wait_for_url(re.compile(r"/plans/\d+/$"))
    plan = Plan.objects.get(name="Win back the cooling")

    _add_step(page, "email", "0", {"subject": "We miss you, {{ first_name }}"})
    _add_step(page, "coupon", "14", {"coupon_value": "20"})
    _add_step(page, "cs_task", "21", {"title": "Call {{ name }}"})
    _add_step(page, "webhook", "30", {"url": "https://crm.example/hook"})
    steps = page.locator("ol.ladder li.step")
    # Reorder with htmx: the task above the coupon, then back; remove the webhook.
    steps.nth(2).get_by_role("button", name="Move step 3 up").click()
    page.wait_for_function(
        "() => document.querySelectorAll('ol.ladder li.step')[1].classList.contains('step-cs_task')"
    )
    assert list(plan.steps.order_by("position").values_list("action", flat=True)) == [
        "email",
        "cs_task",
        "coupon",
        "webhook",
    ]
    page.locator("ol.ladder li.step").nth(1).get_by_role("button", name="Move step 2 down").click()
    page.wait_for_function(
        "() => document.querySelectorAll('ol.ladder li.step')[1].classList.contains('step-coupon')"
    )
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("ol.ladder li.step").nth(3).get_by_role("button", name="Remove step 4").click()
    page.wait_for_function("() => document.querySelectorAll('ol.ladder li.step').length === 3")
    assert list(plan.steps.order_by("position").values_list("action", flat=True)) == [
        "email",
        "coupon",
        "cs_task",
    ]

    # Email preview with a real customer's merge fields.
    page.locator("ol.ladder li.step").first.get_by_role("button", name="Preview").click()
    subject = page.locator("[data-testid=preview-subject]")
    subject.wait_for()
    assert re.match(r"We miss you, \w+", subject.inner_text())
    screenshot(page, "plan-builder")

    # Launch on the segment with a 20% holdout.
    page.get_by_role("link", name="Launch", exact=True).click()
    page.wait_for_url(re.compile(r"/launch/"))
    will_enrol = int(page.locator("[data-testid=will-enrol]").inner_text().replace(",", ""))
    assert will_enrol > 0
    assert "can detect a lift of" in page.locator("[data-testid=guidance]").inner_text()
    page.fill("#id_holdout_percent", "20")
    page.locator("#holdout-options tr.chosen", has_text="20%").wait_for()
    screenshot(page, "plan-launch")
    page.get_by_role("button", name="Launch plan").click()
    page.wait_for_url(re.compile(r"/results/"))
    plan.refresh_from_db()
    assert plan.status == Plan.Status.ACTIVE and plan.holdout_percent == 20

    # The beat would run the tick and dispatch every minute: run them here, inline.
    from campaigns.dispatch import dispatch_due
    from campaigns.results import results_refresh
    from campaigns.tick import plans_tick

    plans_tick()
    plans_tick()  # the day-0 email falls due on the tick after enrolment, at the latest
    dispatch_due()
    results_refresh(plan)
    enrollments = Enrollment.objects.filter(plan=plan)
    assert enrollments.count() == will_enrol
    treated = enrollments.filter(arm="treatment").count()
    assert 0 < treated < will_enrol  # both arms
    assert len(mail.outbox) == treated  # control customers get nothing

    page.reload()
    assert int(page.locator("[data-testid=enrolled]").inner_text().replace(",", "")) == will_enrol
    assert page.locator("#step-results tbody tr").count() == 3
    assert_charts_render(page)
    page.goto("/plans/")
    row = page.locator(f"tr[data-plan='{plan.pk}']")
    assert row.locator("[data-testid=enrolled]").inner_text() == f"{will_enrol:,}"
    assert "Active" in row.inner_text()

    # A treated customer's page lists the enrollment and the email that went out.
    customer_id = enrollments.filter(arm="treatment").first().customer_id
    page.goto(f"/customers/{customer_id}/")
    block = page.locator("#enrollments")
    assert "Win back the cooling" in block.inner_text()
    assert re.search(r"1\. Email\s+— sent", block.inner_text())
    assert page.js_errors == []


def test_customer_success_cannot_open_plans(staff, page_as):
    page = page_as("success")
    assert page.locator("nav.nav").get_by_role("link", name="Plans").count() == 0
    assert page.goto("/plans/").status == 403

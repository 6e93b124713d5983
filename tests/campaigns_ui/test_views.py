"""Plan screens: roles, the builder's htmx steps and preview, launch, results, CS tasks,
enrollments on the customer page."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import results
from campaigns.models import ActionKind, CsTask, Plan, PlanStep
from customers.models import Stage
from segments.models import Segment
from tests.campaigns_ui.conftest import build_known_plan
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def draft(marketer):
    segment = Segment.objects.create(name="Europe", params={"region": ["Europe"]})
    plan = Plan.objects.create(name="Draft plan", trigger_kind="segment_once", segment=segment)
    PlanStep.objects.create(
        plan=plan,
        position=1,
        delay_days=7,
        action=ActionKind.EMAIL,
        config={
            "subject": "We miss you, {{ first_name }}",
            "body_text": "Hi {{ name }}, {{ days_since_last_action }} days already.",
        },
    )
    return plan


def _marketing_urls(plan, step):
    return [
        ("get", reverse("plan-list")),
        ("get", reverse("plan-new")),
        ("get", reverse("plan-builder", args=[plan.pk])),
        ("post", reverse("plan-step-add", args=[plan.pk])),
        ("post", reverse("plan-step-remove", args=[plan.pk, step.pk])),
        ("post", reverse("plan-step-move", args=[plan.pk, step.pk])),
        ("get", reverse("plan-step-preview", args=[plan.pk, step.pk])),
        ("get", reverse("plan-launch", args=[plan.pk])),
        ("get", reverse("plan-launch-audience", args=[plan.pk])),
        ("post", reverse("plan-pause", args=[plan.pk])),
        ("post", reverse("plan-resume", args=[plan.pk])),
        ("post", reverse("plan-stop", args=[plan.pk])),
        ("get", reverse("plan-results", args=[plan.pk])),
        ("post", reverse("plan-results-refresh", args=[plan.pk])),
        ("get", reverse("plan-for-segment", args=[plan.segment_id])),
    ]


@pytest.mark.parametrize("who", ["cs_user", "no_role_user"])
def test_plan_screens_are_403_for_other_roles(request, client, draft, who):
    client.force_login(request.getfixturevalue(who))
    for method, url in _marketing_urls(draft, draft.steps.get()):
        response = getattr(client, method)(url)
        assert response.status_code == 403, (url, response.status_code)
    assert Plan.objects.get(pk=draft.pk).status == Plan.Status.DRAFT
    assert draft.steps.count() == 1


def test_anonymous_is_sent_to_login(client, draft):
    response = client.get(reverse("plan-list"))
    assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.parametrize("who", ["marketer", "admin_user"])
def test_plan_screens_open_for_marketers_and_admins(request, client, draft, who):
    client.force_login(request.getfixturevalue(who))
    for url in (
        reverse("plan-list"),
        reverse("plan-new"),
        reverse("plan-builder", args=[draft.pk]),
        reverse("plan-launch", args=[draft.pk]),
        reverse("plan-results", args=[draft.pk]),
    ):
        assert client.get(url).status_code == 200, url


def test_nav_shows_plans_to_marketers_only(client, marketer, cs_user):
    client.force_login(marketer)
    assert reverse("plan-list") in client.get(reverse("customer-list")).content.decode()
    client.force_login(cs_user)
    assert reverse("plan-list") not in client.get(reverse("customer-list")).content.decode()


def test_create_plan_then_add_reorder_remove_steps_with_htmx(client, marketer):
    client.force_login(marketer)
    response = client.post(
        reverse("plan-new"),
        {
            "name": "Cooling ladder",
            "trigger_kind": "stage_entered",
            "stage": "cooling",
            "holdout_percent": 10,
            "priority": 100,
            "frequency_cap_per_week": 3,
            "cooldown_days": 30,
        },
    )
    plan = Plan.objects.get(name="Cooling ladder")
    assert response.status_code == 302
    assert response["Location"] == reverse("plan-builder", args=[plan.pk])
    assert plan.trigger_params == {"stage": "cooling"} and plan.status == Plan.Status.DRAFT

    add = reverse("plan-step-add", args=[plan.pk])
    r1 = client.post(
        add,
        {
            "action": "email",
            "delay_days": 7,
            "delay_basis": "enrollment",
            "subject": "Hi {{ name }}",
            "body_text": "Come back",
        },
        **HTMX,
    )
    assert r1.status_code == 200 and 'id="steps"' in r1.content.decode()
    client.post(
        add,
        {
            "action": "coupon",
            "delay_days": 14,
            "delay_basis": "enrollment",
            "coupon_kind": "percent",
            "coupon_value": "20",
            "expires_days": 30,
        },
        **HTMX,
    )
    client.post(
        add,
        {
            "action": "cs_task",
            "delay_days": 21,
            "delay_basis": "enrollment",
            "title": "Call {{ name }}",
            "due_days": 3,
        },
        **HTMX,
    )
    steps = list(plan.steps.order_by("position"))
    assert [s.action for s in steps] == ["email", "coupon", "cs_task"]
    assert steps[1].config["value"] == 20.0

    r = client.post(
        reverse("plan-step-move", args=[plan.pk, steps[2].pk]), {"direction": "up"}, **HTMX
    )
    assert r.status_code == 200
    assert list(plan.steps.order_by("position").values_list("action", flat=True)) == [
        "email",
        "cs_task",
        "coupon",
    ]
    html = r.content.decode()
    assert html.index("Call {{ name }}") < html.index("20% off")

    client.post(reverse("plan-step-remove", args=[plan.pk, steps[1].pk]), **HTMX)
    assert list(plan.steps.order_by("position").values_list("action", "position")) == [
        ("email", 1),
        ("cs_task", 2),
    ]


def test_bad_step_is_refused_with_the_field_and_nothing_added(client, marketer, draft):
    client.force_login(marketer)
    r = client.post(
        reverse("plan-step-add", args=[draft.pk]),
        {
            "action": "email",
            "delay_days": 3,
            "delay_basis": "enrollment",
            "subject": "{% if %}",
            "body_text": "x",
        },
        **HTMX,
    )
    html = r.content.decode()
    assert "Template error" in html
    assert draft.steps.count() == 1
    r = client.post(
        reverse("plan-step-add", args=[draft.pk]),
        {"action": "webhook", "delay_days": 3, "delay_basis": "enrollment", "url": ""},
        **HTMX,
    )
    assert "This field is required" in r.content.decode()
    assert draft.steps.count() == 1


def test_preview_renders_the_email_for_a_real_customer(client, marketer, draft):
    customer = CustomerFactory(name="Grace Hopper", external_id="gh-1")
    client.force_login(marketer)
    step = draft.steps.get()
    r = client.get(reverse("plan-step-preview", args=[draft.pk, step.pk]), {"customer": "gh-1"})
    html = r.content.decode()
    assert "We miss you, Grace" in html
    assert "Hi Grace Hopper" in html
    assert reverse("customer-detail", args=[customer.pk]) in html
    r = client.get(reverse("plan-step-preview", args=[draft.pk, step.pk]), {"customer": "nobody"})
    assert "No customer “nobody”" in r.content.decode()


def test_launch_screen_counts_and_launch(client, marketer, draft):
    europe = [CustomerFactory(region="Europe") for _ in range(3)]
    europe[0].email_opt_out = True
    europe[0].save()
    CustomerFactory(region="APAC")
    client.force_login(marketer)
    r = client.get(reverse("plan-launch", args=[draft.pk]))
    html = r.content.decode()
    assert r.status_code == 200
    audience = r.context["audience"]
    assert (audience.matched, audience.eligible, audience.suppressed["opted_out"]) == (3, 2, 1)
    assert "Can the holdout tell?" in html and r.context["advice"].eligible == 2
    partial = client.get(
        reverse("plan-launch-audience", args=[draft.pk]),
        {"segment": draft.segment_id, "holdout_percent": 50},
        **HTMX,
    )
    assert partial.status_code == 200 and partial.context["holdout"] == 50

    r = client.post(
        reverse("plan-launch", args=[draft.pk]),
        {"segment": draft.segment_id, "holdout_percent": 20, "start_at": ""},
    )
    assert r.status_code == 302 and r["Location"] == reverse("plan-results", args=[draft.pk])
    draft.refresh_from_db()
    assert draft.status == Plan.Status.ACTIVE and draft.holdout_percent == 20


def test_launch_refuses_a_plan_that_is_not_a_draft(client, marketer, draft):
    draft.status = Plan.Status.ACTIVE
    draft.save()
    client.force_login(marketer)
    r = client.post(
        reverse("plan-launch", args=[draft.pk]),
        {"segment": draft.segment_id, "holdout_percent": 10},
    )
    assert r.status_code == 200
    assert "Only a draft plan can be launched" in r.content.decode()


def test_pause_resume_from_the_results_page(client, marketer, draft):
    draft.status = Plan.Status.ACTIVE
    draft.launched_at = timezone.now()
    draft.save()
    client.force_login(marketer)
    client.post(reverse("plan-pause", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == Plan.Status.PAUSED
    client.post(reverse("plan-resume", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.status == Plan.Status.ACTIVE


def test_results_page_numbers_and_bounded_queries(client, marketer, django_assert_max_num_queries):
    known = build_known_plan()
    client.force_login(marketer)
    url = reverse("plan-results", args=[known.plan.pk])
    client.get(url)  # stores the snapshot
    with django_assert_max_num_queries(12):
        r = client.get(url)
    html = r.content.decode()
    assert "Lift +20.0 pts, CI +5.2 to +33.4: works" in html
    assert 'id="step-results"' in html and 'id="segment-results"' in html
    assert "Cumulative re-engagement" in html and "js-plotly-plot" in html


def test_results_page_reads_the_snapshot_until_it_is_refreshed(client, marketer):
    known = build_known_plan()
    results.results_refresh(known.plan)
    known.plan.enrollments.filter(arm="control").update(status="exhausted")
    client.force_login(marketer)
    r = client.get(reverse("plan-results", args=[known.plan.pk]))
    assert r.context["res"].overall.x_ctrl == 48  # the stored figures
    client.post(reverse("plan-results-refresh", args=[known.plan.pk]))
    r = client.get(reverse("plan-results", args=[known.plan.pk]))
    assert r.context["res"].overall.x_ctrl == 0


def test_refresh_due_refreshes_running_plans_only_when_stale(db):
    known = build_known_plan()
    Plan.objects.filter(pk=known.plan.pk).update(launched_at=timezone.now())
    now = timezone.now()
    assert results.results_refresh_due(now=now) == 1
    assert results.results_refresh_due(now=now + timedelta(seconds=60)) == 0
    assert results.results_refresh_due(now=now + timedelta(seconds=400)) == 1


def test_plan_list_shows_enrolled_and_lift(client, marketer, django_assert_max_num_queries):
    build_known_plan(name="A")
    build_known_plan(name="B")
    client.force_login(marketer)
    with django_assert_max_num_queries(8):
        r = client.get(reverse("plan-list"))
    html = r.content.decode()
    assert html.count("+20.0 pts") == 2 and ">150<" in html


def test_segment_entry_point_lists_drafts_for_that_segment(client, marketer, draft):
    client.force_login(marketer)
    r = client.get(reverse("segment-launch", args=[draft.segment_id]))
    html = r.content.decode()
    assert r.status_code == 200
    assert f"{reverse('plan-launch', args=[draft.pk])}?segment={draft.segment_id}" in html
    assert f"{reverse('plan-new')}?segment={draft.segment_id}" in html
    r = client.get(reverse("plan-new"), {"segment": draft.segment_id})
    assert r.context["form"].initial["trigger_kind"] == "segment_once"


def test_customer_page_shows_enrollments_and_held_out_actions(client, marketer):
    known = build_known_plan()
    treated = known.plan.enrollments.filter(arm="treatment", steps_done=2).first()
    control = known.plan.enrollments.filter(arm="control").first()
    client.force_login(marketer)
    html = client.get(reverse("customer-detail", args=[treated.customer_id])).content.decode()
    assert known.plan.name in html and "1. Email" in html and "2. Coupon" in html
    assert "— sent" in html
    html = client.get(reverse("customer-detail", args=[control.customer_id])).content.decode()
    assert "held out (control: not sent)" in html and "Control (held out)" in html


def test_cs_tasks_on_renewal_risk_and_done(client, cs_user, marketer):
    known = build_known_plan()
    enrollment = known.plan.enrollments.first()
    execution = enrollment.executions.first()
    task = CsTask.objects.create(
        customer=enrollment.customer,
        owner=cs_user,
        enrollment=enrollment,
        execution=execution,
        title="Call Cust 0 about the renewal",
        due_at=timezone.now() + timedelta(days=2),
    )
    client.force_login(cs_user)
    html = client.get(reverse("renewal-risk")).content.decode()
    assert "Call Cust 0 about the renewal" in html and known.plan.name in html
    r = client.post(reverse("cs-task-done", args=[task.pk]), **HTMX)
    assert r.status_code == 200 and "Done" in r.content.decode()
    task.refresh_from_db()
    assert task.status == CsTask.Status.DONE and task.done_by == cs_user
    client.force_login(marketer)
    assert client.post(reverse("cs-task-done", args=[task.pk])).status_code == 403


def test_stage_labels_for_always_on_segments(db):
    assert results.segment_label(f"stage:{Stage.AT_RISK}", {}) == "Entered as at risk"


def test_builder_saves_settings_but_refuses_holdout_change_after_enrollment(client, marketer):
    known = build_known_plan()
    plan = known.plan
    client.force_login(marketer)
    form = {
        "name": "Win back (renamed)",
        "description": "",
        "trigger_kind": "segment_once",
        "segment": plan.segment_id,
        "holdout_percent": plan.holdout_percent,
        "priority": 100,
        "frequency_cap_per_week": 3,
        "cooldown_days": 30,
    }
    r = client.post(reverse("plan-builder", args=[plan.pk]), form)
    assert r.status_code == 302
    plan.refresh_from_db()
    assert plan.name == "Win back (renamed)"
    r = client.post(reverse("plan-builder", args=[plan.pk]), {**form, "holdout_percent": 30})
    assert r.status_code == 200
    assert "Cannot change holdout_percent after customers were enrolled" in r.content.decode()
    plan.refresh_from_db()
    assert plan.holdout_percent == 50

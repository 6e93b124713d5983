"""Plan services: roles, audit, lifecycle states, steps added, removed and reordered."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import SettingsChange
from campaigns import services
from campaigns.models import Plan
from tests.campaigns.conftest import T0, three_step_plan


def test_only_marketers_and_admins_change_plans(marketer, cs_user, no_role_user, admin_user):
    plan = three_step_plan(marketer)
    for user in (cs_user, no_role_user):
        with pytest.raises(PermissionDenied):
            services.plan_launch(plan, user)
        with pytest.raises(PermissionDenied):
            services.plan_create(user=user, name="x", trigger_params={"stage": "cooling"})
    services.plan_launch(plan, admin_user)
    with pytest.raises(PermissionDenied):
        services.plan_pause(plan, cs_user)
    assert services.plan_pause(plan, marketer).status == "paused"


def test_launch_pause_resume_stop_are_audited(marketer):
    plan = three_step_plan(marketer)
    services.plan_launch(plan, marketer, start_at=timezone.now() + timedelta(days=2))
    assert plan.status == "scheduled"
    services.plan_pause(plan, marketer)
    services.plan_resume(plan, marketer)
    assert plan.status == "scheduled"
    services.plan_stop(plan, marketer)
    assert plan.status == "completed"
    statuses = list(
        SettingsChange.objects.filter(what__startswith=f"plan {plan.pk}", field="status")
        .order_by("id")
        .values_list("old", "new")
    )
    assert statuses == [
        ("draft", "scheduled"),
        ("scheduled", "paused"),
        ("paused", "scheduled"),
        ("scheduled", "completed"),
    ]
    assert all(c.user == marketer for c in SettingsChange.objects.filter(what__startswith="plan "))


def test_launch_overrides_are_audited_and_a_draft_launches_once(marketer):
    plan = three_step_plan(marketer, holdout=10)
    services.plan_launch(plan, marketer, holdout_percent=25, now=T0)
    assert plan.holdout_percent == 25 and plan.status == "active"
    assert SettingsChange.objects.filter(field="holdout_percent", old="10", new="25").exists()
    with pytest.raises(services.PlanError, match="Only a draft"):
        services.plan_launch(plan, marketer)


def test_a_plan_without_steps_cannot_launch(marketer):
    plan = services.plan_create(user=marketer, name="Empty", trigger_params={"stage": "cooling"})
    with pytest.raises(services.PlanError, match="at least one step"):
        services.plan_launch(plan, marketer)


def test_bad_trigger_and_step_config_say_what_is_wrong(marketer):
    with pytest.raises(ValidationError) as error:
        services.plan_create(user=marketer, name="Bad", trigger_params={"stage": "sleepy"})
    assert "trigger_params" in error.value.message_dict
    plan = services.plan_create(user=marketer, name="Ok", trigger_params={"stage": "cooling"})
    with pytest.raises(ValidationError) as error:
        services.step_add(plan=plan, user=marketer, action="webhook", config={"url": "ftp://x"})
    assert "url" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.step_add(
            plan=plan,
            user=marketer,
            action="email",
            config={"subject": "Hi {% if name %}", "body_text": "x"},
        )
    assert "subject" in error.value.message_dict
    assert plan.steps.count() == 0


def test_steps_add_at_a_position_remove_and_reorder(marketer):
    plan = three_step_plan(marketer)
    steps = list(plan.steps.order_by("position"))
    inserted = services.step_add(
        plan=plan,
        user=marketer,
        action="cs_task",
        config={"title": "Call {{ name }}"},
        position=2,
    )
    assert [s.action for s in plan.steps.order_by("position")] == [
        "email",
        "cs_task",
        "coupon",
        "email",
    ]
    services.step_remove(step=inserted, user=marketer)
    assert list(plan.steps.order_by("position").values_list("position", flat=True)) == [1, 2, 3]
    reordered = services.steps_reorder(
        plan=plan, user=marketer, step_ids=[steps[2].pk, steps[0].pk, steps[1].pk]
    )
    assert [s.pk for s in reordered] == [steps[2].pk, steps[0].pk, steps[1].pk]
    with pytest.raises(ValidationError):
        services.steps_reorder(plan=plan, user=marketer, step_ids=[steps[0].pk])


def test_steps_of_an_active_plan_are_frozen(marketer):
    plan = three_step_plan(marketer)
    services.plan_launch(plan, marketer)
    with pytest.raises(services.PlanError, match="pause it first"):
        services.step_add(
            plan=plan, user=marketer, action="coupon", config={"value": 5}, delay_days=1
        )
    services.plan_pause(plan, marketer)
    services.step_add(plan=plan, user=marketer, action="coupon", config={"value": 5})
    assert plan.steps.count() == 4


def test_plan_update_audits_each_changed_field(marketer):
    plan = three_step_plan(marketer)
    services.plan_update(plan=plan, user=marketer, priority=7, cooldown_days=60)
    changed = set(
        SettingsChange.objects.filter(what__startswith=f"plan {plan.pk}").values_list(
            "field", "new"
        )
    )
    assert {("priority", "7"), ("cooldown_days", "60")} <= changed
    assert Plan.objects.get(pk=plan.pk).priority == 7

"""Plans API: read for every role, launch/pause for marketers and admins, enrollments
filtered with cursor pages, results per arm."""

from datetime import timedelta

from campaigns.models import Enrollment
from campaigns.tick import plans_tick
from tests.campaigns.conftest import T0, quiet_customers, three_step_plan


def test_plans_read_for_every_role_launch_only_for_marketers(marketer, cs_api, marketer_api):
    plan = three_step_plan(marketer)
    listing = cs_api.get("/api/v1/plans/")
    assert listing.status_code == 200
    assert listing.json()["results"][0]["name"] == "Win back"
    assert len(listing.json()["results"][0]["steps"]) == 3
    assert cs_api.post(f"/api/v1/plans/{plan.pk}/launch/", {}).status_code == 403
    launched = marketer_api.post(
        f"/api/v1/plans/{plan.pk}/launch/", {"holdout_percent": 20}, format="json"
    )
    assert launched.status_code == 200, launched.content
    assert launched.json()["status"] == "active" and launched.json()["holdout_percent"] == 20
    again = marketer_api.post(f"/api/v1/plans/{plan.pk}/launch/", {}, format="json")
    assert again.status_code == 400 and "draft" in str(again.json())
    paused = marketer_api.post(f"/api/v1/plans/{plan.pk}/pause/")
    assert paused.json()["status"] == "paused"


def test_enrollments_filter_and_page_and_results_count_arms(marketer, marketer_api):
    from campaigns import services

    plan = three_step_plan(marketer, holdout=50)
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    quiet_customers(9)
    plans_tick(now=T0 + timedelta(minutes=1))
    control = Enrollment.objects.filter(arm="control").count()
    page = marketer_api.get(f"/api/v1/enrollments/?plan={plan.pk}&arm=control&page_size=2")
    body = page.json()
    assert page.status_code == 200 and len(body["results"]) == min(2, control)
    seen = [r["id"] for r in body["results"]]
    while body.get("next"):
        body = marketer_api.get(body["next"]).json()
        seen += [r["id"] for r in body["results"]]
    assert len(seen) == len(set(seen)) == control
    results = marketer_api.get(f"/api/v1/plans/{plan.pk}/results/").json()
    arms = results.get("arms") or {}
    if arms:
        assert arms["control"]["enrolled"] == control
        assert arms["treatment"]["enrolled"] == 9 - control


def test_api_needs_credentials(api):
    assert api.get("/api/v1/plans/").status_code in (401, 403)

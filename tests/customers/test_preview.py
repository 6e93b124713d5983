"""The settings preview predicts exactly what saving would do, and writes nothing."""

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import SettingsChange
from customers import jobs
from customers.engagement import engine_config, touchpoint_add
from customers.models import Engagement, EngagementSettings, ScoreState, StageChange, TouchpointType
from customers.preview import BINS, current_types, settings_preview
from customers.services import engine_settings_update
from tests.customers.settings_page import settings_form_data, type_prefix
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def population():
    """30 customers with logins / purchases at varied ages, staged by a full rescore."""
    now = timezone.now()
    login = TouchpointType.objects.get(key="login")
    purchase = TouchpointType.objects.get(key="purchase")
    rng = np.random.default_rng(5)
    for i in range(30):
        c = CustomerFactory(signup_date=(now - timedelta(days=400)).date())
        gap = float(rng.uniform(2, 20))
        silent = float(rng.uniform(0.3, 90)) + 0.37
        for k in range(int(rng.integers(1, 8))):
            kind = purchase if (i % 3 == 0 and k == 0) else login
            touchpoint_add(
                customer=c, type=kind, occurred_at=now - timedelta(days=silent + k * gap)
            )
    jobs.run_inline(jobs.rescore_start(full=True))
    return now


def _actual_histogram() -> list[int]:
    config = engine_config()
    sums = np.array(list(ScoreState.objects.values_list("decay_sum", flat=True)))
    scores = config.score(sums, timezone.now().timestamp())
    return np.bincount(np.minimum(scores // 5, BINS - 1).astype(int), minlength=BINS).tolist()


def _state():
    return (
        list(ScoreState.objects.order_by("pk").values_list("decay_sum", flat=True)),
        list(
            Engagement.objects.order_by("pk").values_list(
                "stage", "customer__score_state__frequency"
            )
        ),
    )


def test_weight_change_preview_matches_the_rescore_it_predicts(population, admin_user):
    types = [
        (pk, w * 4 if key == "purchase" else w, c, a)
        for (pk, w, c, a), key in zip(
            current_types(), TouchpointType.objects.values_list("key", flat=True), strict=True
        )
    ]
    before = _state()
    preview = settings_preview(proposed=engine_config(), types=types)
    assert _state() == before  # nothing written
    assert preview.scores_recomputed and not preview.stages_reevaluated
    assert preview.current_counts == _actual_histogram()
    assert sum(preview.proposed_counts) == preview.customers == 30
    purchase = TouchpointType.objects.get(key="purchase")
    purchase.weight *= 4
    engine_settings_update(settings=None, types=[(purchase, ["weight"])], user=admin_user)
    jobs.run_inline(jobs.rescore_start(full=False))
    assert preview.proposed_counts == _actual_histogram()
    assert preview.proposed_counts != preview.current_counts


def test_threshold_and_activity_preview_matches_the_stage_changes_saving_makes(
    population, admin_user
):
    config = engine_config()
    proposed = replace(
        config,
        thresholds=replace(config.thresholds, cooling_min_days=3, at_risk_min_days=10),
    )
    types = [
        (pk, w, False if pk == TouchpointType.objects.get(key="purchase").pk else c, a)
        for pk, w, c, a in current_types()
    ]
    preview = settings_preview(proposed=proposed, types=types)
    assert preview.stages_reevaluated and preview.customers_moving > 0
    settings = EngagementSettings.load()
    settings.cooling_min_days, settings.at_risk_min_days = 3, 10
    purchase = TouchpointType.objects.get(key="purchase")
    purchase.counts_as_engagement = False
    StageChange.objects.all().delete()
    engine_settings_update(
        settings=settings,
        settings_changed=["cooling_min_days", "at_risk_min_days"],
        types=[(purchase, ["counts_as_engagement"])],
        user=admin_user,
    )
    jobs.run_inline(jobs.rescore_start(full=True))
    actual = Counter(StageChange.objects.values_list("from_stage", "to_stage"))
    assert {(m.from_stage, m.to_stage): m.customers for m in preview.moves} == dict(actual)
    audit = set(SettingsChange.objects.values_list("what", "field", "old", "new"))
    assert audit == {
        ("engagement settings", "cooling_min_days", "7.0", "3"),
        ("engagement settings", "at_risk_min_days", "21.0", "10"),
        ("touchpoint type purchase", "counts_as_engagement", "yes", "no"),
    }
    assert set(SettingsChange.objects.values_list("user", flat=True)) == {admin_user.pk}


def test_preview_screen_shows_moves_and_chart_and_saves_nothing(login, admin_user, population):
    client = login(admin_user)
    data = settings_form_data(client, cooling_min_days=3)
    data[type_prefix(client, "purchase") + "-weight"] = "40"
    response = client.post(reverse("engagement-settings-preview"), data)
    html = response.content.decode()
    assert response.status_code == 200
    assert "would change stage" in html and "Plotly.newPlot" in html
    assert "Scores recomputed from every customer" in html
    assert EngagementSettings.load().cooling_min_days == 7
    assert TouchpointType.objects.get(key="purchase").weight != 40
    assert not SettingsChange.objects.exists()


def test_preview_with_bad_values_explains_them(login, admin_user):
    client = login(admin_user)
    data = settings_form_data(client, half_life_days=0)
    data[type_prefix(client, "login") + "-weight"] = "500"
    html = client.post(reverse("engagement-settings-preview"), data).content.decode()
    assert "Fix these values first" in html
    assert "Half-life" in html or "half life" in html.lower()
    assert "Logged in weight" in html


def test_saving_types_and_settings_together_starts_one_rescore_and_links_the_jobs_page(
    login, admin_user, django_capture_on_commit_callbacks, monkeypatch
):
    from customers import tasks

    sent = []
    monkeypatch.setattr(tasks.rescore_task, "delay", lambda **kw: sent.append(kw))
    client = login(admin_user)
    data = settings_form_data(client, half_life_days=45)
    prefix = type_prefix(client, "login")
    data[prefix + "-weight"] = "5"
    data.pop(prefix + "-counts_as_engagement")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("engagement-settings"), data, follow=True)
    html = response.content.decode()
    assert "A full recompute has started" in html and reverse("jobs") in html
    assert len(sent) == 1 and sent[0]["full"] is True
    login_type = TouchpointType.objects.get(key="login")
    assert login_type.weight == 5 and not login_type.counts_as_engagement
    assert "half_life_days" in html and "counts_as_engagement" in html  # the audit list
    assert SettingsChange.objects.count() == 3

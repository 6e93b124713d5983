"""Unsubscribe and survey links from plan emails work without a login, only with a valid
signed token, and record what the customer did."""

from datetime import timedelta

import pytest
from django.urls import reverse

from campaigns import services
from campaigns.dispatch import dispatch_due
from campaigns.emails import email_preview, unsubscribe_token
from campaigns.models import SurveyInvitation
from campaigns.tick import plans_tick
from customers.models import PendingTouchpoint, Touchpoint
from tests.campaigns.conftest import T0, quiet_customers, three_step_plan

pytestmark = pytest.mark.django_db


def test_unsubscribe_link_sets_the_opt_out(client):
    customer = quiet_customers(1)[0]
    url = reverse("campaigns-unsubscribe", args=[unsubscribe_token(customer.pk)])
    page = client.get(url)
    assert page.status_code == 200 and customer.email in page.content.decode()
    customer.refresh_from_db()
    assert not customer.email_opt_out  # a GET (e.g. a link scanner) changes nothing
    assert client.post(url).status_code == 200  # one-click: no CSRF token, the link signs it
    customer.refresh_from_db()
    assert customer.email_opt_out


def test_forged_unsubscribe_token_is_404(client):
    customer = quiet_customers(1)[0]
    token = unsubscribe_token(customer.pk)
    assert (
        client.post(reverse("campaigns-unsubscribe", args=[token[:-2] + "xx"])).status_code == 404
    )


def test_email_has_text_html_unsubscribe_and_merge_fields(marketer):
    customer = quiet_customers(1)[0]
    plan = three_step_plan(marketer)
    rendered = email_preview(plan.steps.get(position=3), customer, now=T0)
    assert "SAMPLE2345" in rendered.text and "20.00 off" in rendered.text
    assert "<b>SAMPLE2345</b>" in rendered.html
    assert "/c/unsubscribe/" in rendered.text and "/c/unsubscribe/" in rendered.html
    assert rendered.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    first = email_preview(plan.steps.get(position=1), customer, now=T0)
    assert first.subject == f"We miss you, {customer.name.split()[0]}"
    assert "20 days" in first.text


def test_survey_answer_is_recorded_once_as_a_touchpoint(marketer, outbox, client):
    customer = quiet_customers(1)[0]
    plan = services.plan_create(
        user=marketer,
        name="Survey",
        trigger_params={"stage": "cooling"},
        holdout_percent=0,
    )
    services.step_add(
        plan=plan,
        user=marketer,
        action="survey",
        config={"subject": "Two minutes?", "question": "How likely are you to recommend us?"},
    )
    services.plan_launch(plan, marketer, now=T0 - timedelta(hours=1))
    plans_tick(now=T0 + timedelta(minutes=1))
    dispatch_due(now=T0 + timedelta(minutes=1))
    assert len(outbox) == 1
    link = next(w for w in outbox[0].body.split() if "/c/survey/" in w)
    path = link[link.index("/c/survey/") :]
    page = client.get(path)
    assert "How likely" in page.content.decode()
    assert client.post(path, {"rating": "9", "answer": "Great"}).status_code == 200
    assert client.post(path, {"rating": "1"}).status_code == 200
    invitation = SurveyInvitation.objects.get()
    assert invitation.rating == 9 and invitation.answer == "Great"
    touchpoint = Touchpoint.objects.get(customer=customer, type__key="survey_response")
    assert touchpoint.properties["rating"] == 9
    assert PendingTouchpoint.objects.filter(touchpoint=touchpoint).exists()
    assert client.get(path.replace("/c/survey/", "/c/survey/x")).status_code == 404

"""Segments: validated saves, live count, daily sizes, pages."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from customers.engagement import engagement_refresh, touchpoint_add
from customers.models import TouchpointType
from segments.models import Segment, SegmentSize
from segments.selectors import score_distribution, segment_customers, stage_mix
from segments.services import segment_params_clean, segment_save, segment_sizes_record_all
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    login = TouchpointType.objects.get(key="login")
    now = timezone.now()
    made = []
    for i in range(9):
        c = CustomerFactory(region="Europe" if i < 4 else "APAC", lifetime_revenue=Decimal(i))
        for day in range(i):
            touchpoint_add(customer=c, type=login, occurred_at=now - timedelta(days=day))
        made.append(c)
    engagement_refresh(now=now)
    return made


def test_save_stores_canonical_params_and_todays_size(people, marketer):
    segment = segment_save(
        name=" Europe ", description="", params={"region": "Europe", "plan": ""}, user=marketer
    )
    assert segment.name == "Europe" and segment.params == {"region": ["Europe"]}
    assert segment.cached_size == 4 and segment.cached_size_exact
    assert list(segment.sizes.values_list("customers", flat=True)) == [4]
    assert segment_customers(segment).count() == 4
    assert segment.created_by == marketer


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"stage": ["sleepy"]}, "Stage: Select a valid choice. sleepy is not one of"),
        ({"score_min": ["lots"]}, "Score from: Enter a number."),
        ({"favourite_colour": ["red"]}, "Unknown filter 'favourite_colour'"),
    ],
)
def test_bad_params_are_refused_with_a_clear_message(marketer, params, message):
    with pytest.raises(ValidationError) as caught:
        segment_save(name="Bad", description="", params=params, user=marketer)
    assert any(message in m for ms in caught.value.message_dict.values() for m in ms)
    assert not Segment.objects.exists()


def test_params_clean_accepts_every_filter_of_the_list():
    cleaned = segment_params_clean(
        {"stage": ["cooling", "at_risk"], "score_min": "10", "channel": "email", "channel_days": 7}
    )
    assert cleaned == {
        "stage": ["cooling", "at_risk"],
        "score_min": ["10"],
        "channel": ["email"],
        "channel_days": ["7"],
    }


def test_builder_saves_from_the_form(login, marketer, people):
    client = login(marketer)
    response = client.post(
        reverse("segment-new"), {"name": "APAC", "description": "d", "region": "APAC"}
    )
    segment = Segment.objects.get(name="APAC")
    assert response.status_code == 302 and response.url == reverse(
        "segment-detail", args=[segment.pk]
    )
    assert segment.params == {"region": ["APAC"]} and segment.cached_size == 5


def test_builder_refuses_bad_input_and_keeps_what_was_typed(login, marketer, people):
    client = login(marketer)
    response = client.post(
        reverse("segment-new"), {"name": "Odd", "description": "keep me", "score_max": "high"}
    )
    body = response.content.decode()
    assert response.status_code == 400 and "Enter a number" in body and "keep me" in body
    assert not Segment.objects.exists()
    duplicate = {"name": "Dup", "region": "Europe"}
    client.post(reverse("segment-new"), duplicate)
    again = client.post(reverse("segment-new"), duplicate)
    assert again.status_code == 400 and "already exists" in again.content.decode()


def test_builder_prefills_from_the_list_filter(login, marketer, people):
    body = login(marketer).get(reverse("segment-new") + "?region=Europe").content.decode()
    assert 'value="Europe"' in body and "<strong>4</strong> customers match" in body


def test_live_count_follows_the_filter(login, marketer, people):
    client = login(marketer)
    everyone = client.get(reverse("segment-count")).content.decode()
    assert "<strong>9</strong>" in everyone
    europe = client.get(reverse("segment-count"), {"region": "Europe"}).content.decode()
    assert "<strong>4</strong>" in europe
    bad = client.get(reverse("segment-count"), {"p_alive_min": "likely"}).content.decode()
    assert "P(still engaged) from: Enter a number." in bad


def test_daily_sizes_are_recorded_once_per_day(people, marketer):
    segment = segment_save(name="EU", description="", params={"region": "Europe"}, user=marketer)
    tomorrow = timezone.now().date() + timedelta(days=1)
    assert segment_sizes_record_all(day=tomorrow) == 1
    CustomerFactory(region="Europe")
    assert segment_sizes_record_all(day=tomorrow) == 1
    sizes = list(SegmentSize.objects.filter(segment=segment).values_list("day", "customers"))
    assert sizes == [(timezone.now().date(), 4), (tomorrow, 5)]


def test_stage_mix_and_score_distribution_add_up(people, marketer):
    segment = segment_save(name="All", description="", params={}, user=marketer)
    customers = segment_customers(segment)
    assert sum(stage_mix(customers).values()) == 9
    distribution = score_distribution(customers)
    assert sum(distribution) == 9 and distribution[0] >= 1  # the customer with no touchpoint


def test_detail_compare_and_launch_pages(login, marketer, people, django_assert_max_num_queries):
    a = segment_save(name="EU", description="", params={"region": "Europe"}, user=marketer)
    b = segment_save(name="APAC", description="", params={"region": "APAC"}, user=marketer)
    client = login(marketer)
    with django_assert_max_num_queries(12):
        detail = client.get(reverse("segment-detail", args=[a.pk])).content.decode()
    assert 'id="segment-size">4<' in detail and detail.count('class="plotly-graph-div"') == 3
    assert reverse("segment-launch", args=[a.pk]) in detail
    compare = client.get(reverse("segment-compare"), {"a": a.pk, "b": b.pk}).content.decode()
    assert "EU" in compare and "APAC" in compare and compare.count("plotly-graph-div") >= 2
    same = client.get(reverse("segment-compare"), {"a": a.pk, "b": a.pk}).content.decode()
    assert "Choose two different saved segments" in same
    listing = client.get(reverse("segment-list")).content.decode()
    assert "?region=Europe" in listing
    assert client.get(reverse("segment-launch", args=[a.pk])).status_code == 200
    client.post(reverse("segment-delete", args=[b.pk]))
    assert not Segment.objects.filter(pk=b.pk).exists()


def test_size_history_uses_recorded_days(people, marketer):
    segment = segment_save(name="EU", description="", params={"region": "Europe"}, user=marketer)
    SegmentSize.objects.create(segment=segment, day=date(2020, 1, 1), customers=1)
    assert SegmentSize.objects.filter(segment=segment).count() == 2


def test_values_meaning_any_are_not_stored():
    assert segment_params_clean({"email_opt_out": "unknown", "region": "Europe"}) == {
        "region": ["Europe"]
    }

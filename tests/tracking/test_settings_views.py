"""The tracking settings screen: admins only, keys shown once, mapping backfills."""

import hashlib

import pytest
from django.urls import reverse

from customers.models import Touchpoint, TouchpointType
from tests.tracking.conftest import basic
from tracking.models import EventMapping, Source, WriteKey

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.parametrize(
    ("user_fixture", "status"),
    [("admin_user", 200), ("marketer", 403), ("cs_user", 403), ("no_role_user", 403)],
)
def test_only_admins_use_the_screen(request, login, user_fixture, status):
    client = login(request.getfixturevalue(user_fixture))
    assert client.get(reverse("tracking-settings")).status_code == status
    assert client.post(reverse("tracking-source-add"), {"name": "X"}).status_code == status
    assert not Source.objects.exists() or status == 200


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get(reverse("tracking-settings"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_settings_page_links_to_the_tracking_screen(login, admin_user):
    page = login(admin_user).get(reverse("engagement-settings")).content.decode()
    assert reverse("tracking-settings") in page


def test_a_new_source_shows_its_key_once_and_stores_only_a_hash(login, admin_user, client):
    admin = login(admin_user)
    response = admin.post(reverse("tracking-source-add"), {"name": "Mobile app"}, **HX)
    assert response.status_code == 200
    key = response.context["new_key"]
    html = response.content.decode()
    assert key in html and "shown only this once" in html
    assert 'id="sources"' in html and "<html" not in html  # the htmx partial
    row = WriteKey.objects.get(source__name="Mobile app")
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert key not in str(list(WriteKey.objects.values())) and row.prefix == key[:12]
    assert key not in admin.get(reverse("tracking-settings")).content.decode()
    # the key works on the API
    api = client.post(
        "/v1/track",
        '{"userId": "u", "event": "Signed In"}',
        content_type="application/json",
        HTTP_AUTHORIZATION=basic(key),
    )
    assert api.status_code == 200
    assert Touchpoint.objects.get().source == "mobile-app"


def test_duplicate_source_names_are_refused(login, admin_user):
    admin = login(admin_user)
    admin.post(reverse("tracking-source-add"), {"name": "Web"}, **HX)
    response = admin.post(reverse("tracking-source-add"), {"name": "web"}, **HX)
    assert "exists already" in response.content.decode()
    assert Source.objects.count() == 1


def test_rotate_then_revoke_the_old_key(login, admin_user, source_key, client):
    source, old_key = source_key
    admin = login(admin_user)
    response = admin.post(reverse("tracking-key-add", args=[source.pk]), **HX)
    new_key = response.context["new_key"]
    old = WriteKey.objects.get(key_hash=hashlib.sha256(old_key.encode()).hexdigest())
    response = admin.post(reverse("tracking-key-revoke", args=[old.pk]), **HX)
    assert "revoked" in response.content.decode()

    def track(key):
        return client.post(
            "/v1/track",
            '{"userId": "u", "event": "Signed In"}',
            content_type="application/json",
            HTTP_AUTHORIZATION=basic(key),
        ).status_code

    assert (track(old_key), track(new_key)) == (401, 200)


def test_unmapped_names_are_listed_and_mapping_one_backfills(
    login, admin_user, send, monkeypatch, django_capture_on_commit_callbacks
):
    from tracking import tasks

    monkeypatch.setattr(tasks.backfill_task, "delay", lambda name: tasks.backfill_task.run(name))
    for i in range(3):
        send("track", {"userId": f"u{i}", "event": "Report Exported", "messageId": f"r{i}"})
    admin = login(admin_user)
    page = admin.get(reverse("tracking-settings"))
    row = page.context["unmapped"][0]
    assert (row["event_name"], row["count"], row["customers"]) == ("Report Exported", 3, 3)
    assert "Report Exported" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            reverse("tracking-mapping-save"),
            {"event_name": "Report Exported", "type": "product_use"},
            **HX,
        )
    html = response.content.decode()
    assert "3 stored events of this name are being converted" in html
    assert Touchpoint.objects.filter(type__key="product_use").count() == 3
    assert response.context["unmapped"][0]["mapped"] is True  # shown as converting
    assert admin.get(reverse("tracking-settings")).context["unmapped"] == []


def test_mapping_form_errors_are_shown(login, admin_user):
    response = login(admin_user).post(
        reverse("tracking-mapping-save"), {"event_name": "", "type": "nope"}, **HX
    )
    html = response.content.decode()
    assert "Event name: This field is required." in html
    assert "Type: Select a valid choice." in html
    assert not EventMapping.objects.filter(event_name="").exists()


def test_removing_a_mapping(login, admin_user):
    mapping = EventMapping.objects.create(
        event_name="Seat Added", type=TouchpointType.objects.get(key="product_use")
    )
    response = login(admin_user).post(reverse("tracking-mapping-delete", args=[mapping.pk]), **HX)
    assert "no longer mapped" in response.content.decode()
    assert not EventMapping.objects.filter(pk=mapping.pk).exists()


def test_refused_messages_are_listed(login, admin_user, send):
    send("track", {"userId": "u", "event": "x", "timestamp": "2026-01-01T00:00:00"})
    html = login(admin_user).get(reverse("tracking-settings")).content.decode()
    assert "has no time zone" in html


def test_actions_need_post(login, admin_user):
    assert login(admin_user).get(reverse("tracking-source-add")).status_code == 405

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url_name", ["home", "engagement-settings"])
def test_anonymous_visitor_is_sent_to_login(client, url_name):
    url = reverse(url_name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_login_page_is_public(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_login_with_right_password_reaches_home(client, marketer):
    response = client.post(
        reverse("login"), {"username": marketer.username, "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_login_with_wrong_password_is_refused(client, marketer):
    response = client.post(reverse("login"), {"username": marketer.username, "password": "nope"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content


@pytest.mark.parametrize(
    ("user_fixture", "expected"),
    [("admin_user", 200), ("marketer", 403), ("cs_user", 403), ("no_role_user", 403)],
)
def test_only_admins_reach_engagement_settings(request, login, user_fixture, expected):
    client = login(request.getfixturevalue(user_fixture))
    response = client.get(reverse("engagement-settings"))
    assert response.status_code == expected
    if expected == 403:
        assert b"not part of your role" in response.content


@pytest.mark.parametrize(
    ("user_fixture", "sees_settings"),
    [("admin_user", True), ("marketer", False), ("cs_user", False)],
)
def test_navigation_shows_only_what_the_role_may_use(request, login, user_fixture, sees_settings):
    client = login(request.getfixturevalue(user_fixture))
    content = client.get(reverse("home")).content.decode()
    assert (reverse("engagement-settings") in content) is sees_settings


def test_user_without_role_is_told_to_ask_for_one(login, no_role_user):
    content = login(no_role_user).get(reverse("home")).content.decode()
    assert "has no role yet" in content


def test_customer_success_cannot_use_django_admin(login, cs_user):
    response = login(cs_user).get("/admin/")
    assert response.status_code == 302  # admin's own login: not staff


def test_admin_can_save_settings_and_bad_values_are_explained(login, admin_user):
    from customers.models import EngagementSettings
    from tests.customers.settings_page import settings_form_data

    client = login(admin_user)
    data = settings_form_data(client, half_life_days=45)
    response = client.post(reverse("engagement-settings"), data)
    assert response.status_code == 302
    assert EngagementSettings.load().half_life_days == 45
    assert EngagementSettings.load().updated_by == admin_user

    data.update(
        {"engine-half_life_days": 0, "engine-cooling_multiple": 5, "engine-at_risk_multiple": 4}
    )
    response = client.post(reverse("engagement-settings"), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "half_life_days" in errors
    assert "cooling < at risk < lapsed" in errors["at_risk_multiple"][0]
    assert EngagementSettings.load().half_life_days == 45  # nothing half-applied


def test_role_groups_carry_model_permissions():
    marketer = Group.objects.get(name="Marketer")
    success = Group.objects.get(name="Customer success")
    admin = Group.objects.get(name="Admin")
    codes = lambda g: set(g.permissions.values_list("codename", flat=True))  # noqa: E731
    assert "view_customer" in codes(marketer)
    assert "change_touchpointtype" not in codes(marketer)
    assert {"change_customer", "add_touchpoint"} <= codes(success)
    assert "change_engagementsettings" not in codes(success)
    assert {"change_touchpointtype", "change_engagementsettings"} <= codes(admin)

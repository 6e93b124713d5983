"""Who may call what: tokens, sessions, roles, revocation, CSRF, throttling."""

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient

from api.models import ApiToken
from api.tokens import secret_digest, token_issue, token_revoke
from customers.roles import Role
from tests.factories import CustomerFactory

CUSTOMERS = "/api/v1/customers/"
TYPES = "/api/v1/touchpoint-types/"
BULK = "/api/v1/touchpoints/bulk/"
NEW_CUSTOMER = {"external_id": "acme-1", "name": "Acme"}
GOOD_ITEM = {
    "customer_external_id": "known",
    "type": "login",
    "occurred_at": "2026-01-05T10:00:00Z",
    "idempotency_key": "evt-1",
}


def test_anonymous_gets_401_with_bearer_challenge(api, db):
    response = api.get(CUSTOMERS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_api_is_not_redirected_to_the_login_page(api, db):
    assert api.post(BULK, {}, format="json").status_code == 401


@pytest.mark.parametrize("header", ["Bearer lc_nope", "Bearer", "Token a b", "Bearer \xff"])
def test_unknown_or_malformed_token_is_401(api, db, header):
    api.credentials(HTTP_AUTHORIZATION=header)
    response = api.get(CUSTOMERS)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_revoked_token_is_401_with_a_reason(token_client, admin_user):
    client = token_client(Role.ADMIN)
    assert client.get(CUSTOMERS).status_code == 200
    assert token_revoke(token=client.token, revoked_by=admin_user)
    response = client.get(CUSTOMERS)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert not token_revoke(token=client.token, revoked_by=admin_user)  # idempotent


def test_only_the_hash_is_stored_and_use_is_recorded(admin_user):
    issued = token_issue(name="CRM", role=Role.MARKETER, created_by=admin_user)
    stored = ApiToken.objects.get()
    assert issued.secret.startswith("lc_") and len(issued.secret) > 40
    assert issued.secret not in {stored.secret_hash, stored.prefix}
    assert stored.secret_hash == secret_digest(issued.secret)
    assert stored.last_used_at is None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    assert client.get(TYPES).status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None


# role -> (read customers, write customers, write touchpoints, write types)
MATRIX = {
    Role.MARKETER: (200, 403, 200, 403),
    Role.CUSTOMER_SUCCESS: (200, 201, 200, 403),
    Role.ADMIN: (200, 201, 200, 201),
}


def _calls(client: APIClient) -> tuple[int, int, int, int]:
    return (
        client.get(CUSTOMERS).status_code,
        client.post(CUSTOMERS, NEW_CUSTOMER, format="json").status_code,
        client.post(BULK, {"items": [GOOD_ITEM]}, format="json").status_code,
        client.post(
            TYPES,
            {"key": "visit", "label": "Visit", "channel": "in_person", "weight": "3"},
            format="json",
        ).status_code,
    )


@pytest.mark.parametrize("role", list(MATRIX))
def test_token_role_permissions(token_client, role):
    CustomerFactory(external_id="known")
    assert _calls(token_client(role)) == MATRIX[role]


@pytest.mark.parametrize(
    ("user_fixture", "role"),
    [("marketer", Role.MARKETER), ("cs_user", Role.CUSTOMER_SUCCESS), ("admin_user", Role.ADMIN)],
)
def test_session_role_permissions(request, db, api, user_fixture, role):
    CustomerFactory(external_id="known")
    api.force_login(request.getfixturevalue(user_fixture))
    assert _calls(api) == MATRIX[role]


def test_user_without_role_gets_403_everywhere(api, no_role_user):
    api.force_login(no_role_user)
    for response in (api.get(CUSTOMERS), api.get(TYPES)):
        assert response.status_code == 403
        assert "no Lifecycle role" in response.json()["detail"]
    assert api.get("/api/schema/").status_code == 403
    assert api.post(BULK, {"items": [GOOD_ITEM]}, format="json").status_code == 403


def test_session_writes_need_the_csrf_token(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get(CUSTOMERS).status_code == 200
    response = client.post(CUSTOMERS, NEW_CUSTOMER, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_tokens_need_no_csrf_token(token_client):
    client = token_client(Role.ADMIN)
    client.handler.enforce_csrf_checks = True
    assert client.post(CUSTOMERS, NEW_CUSTOMER, format="json").status_code == 201


def test_throttle_answers_429_per_token(token_client, monkeypatch):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "api_read": "2/min"}
    monkeypatch.setattr("rest_framework.throttling.SimpleRateThrottle.THROTTLE_RATES", rates)
    cache.clear()
    first, second = token_client(Role.MARKETER), token_client(Role.MARKETER)
    assert [first.get(TYPES).status_code for _ in range(3)] == [200, 200, 429]
    assert second.get(TYPES).status_code == 200  # its own budget
    assert first.post(BULK, {"items": [GOOD_ITEM]}, format="json").status_code != 429
    cache.clear()

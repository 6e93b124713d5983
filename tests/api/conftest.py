import pytest
from rest_framework.test import APIClient

from api.tokens import token_issue
from customers.roles import Role


@pytest.fixture
def api():
    """An API client with no credentials."""
    return APIClient()


@pytest.fixture
def token_client(db, admin_user):
    """``token_client(role)``: an API client sending a fresh token issued for ``role``."""

    def _client(role: Role) -> APIClient:
        issued = token_issue(name=f"{role} integration", role=role, created_by=admin_user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
        client.token = issued.token
        return client

    return _client


@pytest.fixture
def admin_api(token_client):
    return token_client(Role.ADMIN)


@pytest.fixture
def cs_api(token_client):
    return token_client(Role.CUSTOMER_SUCCESS)


@pytest.fixture
def marketer_api(token_client):
    return token_client(Role.MARKETER)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are made per test here; PBKDF2 would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

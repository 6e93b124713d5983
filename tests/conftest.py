import pytest

from customers.roles import Role
from tests.factories import UserFactory

PASSWORD = "correct horse battery"


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada-admin", roles=[Role.ADMIN])


@pytest.fixture
def marketer(db):
    return UserFactory(username="max-marketer", roles=[Role.MARKETER])


@pytest.fixture
def cs_user(db):
    return UserFactory(username="cleo-cs", roles=[Role.CUSTOMER_SUCCESS])


@pytest.fixture
def no_role_user(db):
    return UserFactory(username="nora-none")


@pytest.fixture
def login(client):
    """Log a user in on the test client and return the client."""

    def _login(user):
        client.force_login(user)
        return client

    return _login

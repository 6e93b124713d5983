"""OpenAPI schema, the docs page (served locally), and the API-token admin page."""

import re

import yaml
from django.urls import reverse
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from api.models import ApiToken
from customers.roles import Role


def test_schema_is_valid_openapi_3(marketer_api):
    response = marketer_api.get("/api/schema/?format=json")
    assert response.status_code == 200
    schema = response.json() if hasattr(response, "json") else None
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in (
        "/api/v1/customers/",
        "/api/v1/customers/{id}/",
        "/api/v1/customers/by-external-id/{external_id}/",
        "/api/v1/touchpoints/",
        "/api/v1/touchpoints/bulk/",
        "/api/v1/touchpoint-types/{key}/",
    ):
        assert path in paths, path
    assert schema["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"
    params = {p["name"] for p in paths["/api/v1/customers/"]["get"]["parameters"]}
    assert {"cursor", "ordering", "stage", "score_min", "region"} <= params


def test_schema_needs_authentication(db):
    assert APIClient().get("/api/schema/").status_code == 401


def test_docs_page_uses_local_assets(client, marketer):
    assert client.get("/api/docs/").status_code == 302  # login first
    client.force_login(marketer)
    html = client.get("/api/docs/").content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui" in a for a in assets)
    assert all(not a.startswith(("http://", "https://", "//")) for a in assets), assets
    assert "/api/schema/" in html


def test_admin_issues_and_revokes_tokens(client, admin_user):
    client.force_login(admin_user)
    page = client.post(reverse("api-tokens"), {"name": "CRM sync", "role": Role.CUSTOMER_SUCCESS})
    html = page.content.decode()
    secret = re.search(r'id="new-token">(lc_[^<]+)<', html).group(1)
    token = ApiToken.objects.get()
    assert (token.name, token.role, token.created_by) == (
        "CRM sync",
        "Customer success",
        admin_user,
    )
    assert secret not in client.get(reverse("api-tokens")).content.decode()  # shown once
    machine = APIClient()
    machine.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert machine.get("/api/v1/customers/").status_code == 200
    client.post(reverse("api-token-revoke", args=[token.pk]), follow=True)
    assert machine.get("/api/v1/customers/").status_code == 401
    assert "revoked" in client.get(reverse("api-tokens")).content.decode()


def test_token_page_is_for_admins_only(client, marketer):
    client.force_login(marketer)
    assert client.get(reverse("api-tokens")).status_code == 403
    assert client.post(reverse("api-tokens"), {"name": "x", "role": "Admin"}).status_code == 403
    assert ApiToken.objects.count() == 0


def test_token_form_errors_are_shown(client, admin_user):
    client.force_login(admin_user)
    html = client.post(reverse("api-tokens"), {"name": "", "role": "Owner"}).content.decode()
    assert "This field is required" in html and "Select a valid choice" in html
    assert ApiToken.objects.count() == 0

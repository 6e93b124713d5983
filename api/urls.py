from django.contrib.auth.decorators import login_required
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from api import pages, views

router = SimpleRouter()
router.register("customers", views.CustomerViewSet, basename="api-customer")
router.register("touchpoints", views.TouchpointViewSet, basename="api-touchpoint")
router.register("touchpoint-types", views.TouchpointTypeViewSet, basename="api-touchpoint-type")

urlpatterns = [
    # Before the router, so "bulk" is not read as a touchpoint id.
    path(
        "api/v1/touchpoints/bulk/",
        views.BulkTouchpointsView.as_view(),
        name="api-touchpoints-bulk",
    ),
    path("api/v1/", include(router.urls)),
    path("api/v1/", include("campaigns.api_urls")),
    path("api/schema/", views.SchemaView.as_view(), name="api-schema"),
    # DRF exempts its views from the login middleware; people reading docs log in first.
    path(
        "api/docs/",
        login_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        login_required(SpectacularRedocView.as_view(url_name="api-schema")),
        name="api-redoc",
    ),
    path("settings/api-tokens/", pages.token_list, name="api-tokens"),
    path("settings/api-tokens/<int:pk>/revoke/", pages.token_revoke_view, name="api-token-revoke"),
]

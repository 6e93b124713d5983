from django.urls import path

from tracking import api, views

urlpatterns = [
    *[
        path(f"v1/{endpoint}", api.tracking_endpoint, {"endpoint": endpoint}, name=f"v1-{endpoint}")
        for endpoint in api.ENDPOINTS
    ],
    path("settings/tracking/", views.tracking_settings, name="tracking-settings"),
    path("settings/tracking/sources/", views.source_add, name="tracking-source-add"),
    path(
        "settings/tracking/sources/<int:source_id>/keys/",
        views.key_add,
        name="tracking-key-add",
    ),
    path(
        "settings/tracking/keys/<int:key_id>/revoke/",
        views.key_revoke,
        name="tracking-key-revoke",
    ),
    path("settings/tracking/mappings/", views.mapping_save, name="tracking-mapping-save"),
    path(
        "settings/tracking/mappings/<int:mapping_id>/delete/",
        views.mapping_delete,
        name="tracking-mapping-delete",
    ),
    path("settings/tracking/backfill/", views.backfill_run, name="tracking-backfill"),
]

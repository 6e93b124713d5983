from django.urls import path

from imports import views

urlpatterns = [
    path("", views.import_page, name="imports"),
    path("runs/", views.import_list, name="import-list"),
    path("<int:run_id>/", views.import_detail, name="import-detail"),
    path("<int:run_id>/status/", views.import_status, name="import-status"),
    path("<int:run_id>/errors.csv", views.import_errors, name="import-errors"),
    path("example/<slug:kind>.csv", views.import_template, name="import-example"),
]

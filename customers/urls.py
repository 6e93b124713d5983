from django.urls import path

from customers import views

urlpatterns = [
    path("", views.home, name="home"),
    path("settings/", views.engagement_settings, name="engagement-settings"),
    path("jobs/", views.jobs_page, name="jobs"),
    path("jobs/table/", views.jobs_table, name="jobs-table"),
    path("jobs/start/", views.jobs_start, name="jobs-start"),
    path("customers/export.csv", views.customers_export, name="customers-export"),
]

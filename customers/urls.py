from django.urls import path

from customers import screens, views

urlpatterns = [
    path("", screens.home, name="home"),
    path("customers/", screens.customer_list, name="customer-list"),
    path("customers/<int:pk>/", screens.customer_detail, name="customer-detail"),
    path("settings/", views.engagement_settings, name="engagement-settings"),
    path(
        "settings/preview/", views.engagement_settings_preview, name="engagement-settings-preview"
    ),
    path("jobs/", views.jobs_page, name="jobs"),
    path("jobs/table/", views.jobs_table, name="jobs-table"),
    path("jobs/start/", views.jobs_start, name="jobs-start"),
    path("customers/export.csv", views.customers_export, name="customers-export"),
]

from django.urls import path

from success import views

urlpatterns = [
    path("renewal-risk/", views.renewal_risk, name="renewal-risk"),
    path("renewal-risk/export.csv", views.renewal_risk_export, name="renewal-risk-export"),
    path("customers/<int:pk>/notes/", views.customer_note_create, name="customer-note-create"),
]

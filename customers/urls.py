from django.urls import path

from customers import views

urlpatterns = [
    path("", views.home, name="home"),
    path("settings/", views.engagement_settings, name="engagement-settings"),
]

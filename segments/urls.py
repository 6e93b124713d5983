from django.urls import path

from segments import views

urlpatterns = [
    path("", views.segment_list, name="segment-list"),
    path("new/", views.segment_new, name="segment-new"),
    path("count/", views.segment_count, name="segment-count"),
    path("compare/", views.segment_compare, name="segment-compare"),
    path("<int:pk>/", views.segment_detail, name="segment-detail"),
    path("<int:pk>/edit/", views.segment_edit, name="segment-edit"),
    path("<int:pk>/launch/", views.segment_launch, name="segment-launch"),
    path("<int:pk>/delete/", views.segment_delete, name="segment-delete"),
]

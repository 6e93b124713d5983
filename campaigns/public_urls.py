"""Public URLs reached from plan emails (signed tokens, no login)."""

from django.urls import path

from campaigns import public

urlpatterns = [
    path("unsubscribe/<str:token>/", public.unsubscribe, name="campaigns-unsubscribe"),
    path("survey/<str:token>/", public.survey, name="campaigns-survey"),
]

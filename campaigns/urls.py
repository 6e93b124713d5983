from django.urls import path

from campaigns import views

urlpatterns = [
    path("", views.plan_list, name="plan-list"),
    path("new/", views.plan_new, name="plan-new"),
    path("<int:pk>/", views.plan_builder, name="plan-builder"),
    path("<int:pk>/steps/add/", views.step_add, name="plan-step-add"),
    path("<int:pk>/steps/<int:step_pk>/remove/", views.step_remove, name="plan-step-remove"),
    path("<int:pk>/steps/<int:step_pk>/move/", views.step_move, name="plan-step-move"),
    path("<int:pk>/steps/<int:step_pk>/preview/", views.step_preview, name="plan-step-preview"),
    path("<int:pk>/launch/", views.plan_launch, name="plan-launch"),
    path("<int:pk>/launch/audience/", views.launch_audience, name="plan-launch-audience"),
    path("<int:pk>/pause/", views.plan_pause, name="plan-pause"),
    path("<int:pk>/resume/", views.plan_resume, name="plan-resume"),
    path("<int:pk>/stop/", views.plan_stop, name="plan-stop"),
    path("<int:pk>/results/", views.plan_results, name="plan-results"),
    path("<int:pk>/results/refresh/", views.plan_results_refresh, name="plan-results-refresh"),
    path("for-segment/<int:segment_pk>/", views.segment_plans, name="plan-for-segment"),
    path("tasks/<int:task_pk>/done/", views.cs_task_done, name="cs-task-done"),
]

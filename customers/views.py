from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from customers.export import ExportFilterError, customers_export_response, customers_for_export
from customers.forms import EngagementSettingsForm
from customers.models import (
    Customer,
    Engagement,
    EngagementSettings,
    JobRun,
    ModelFit,
    Stage,
    TouchpointType,
)
from customers.roles import Role, role_required
from customers.services import engagement_settings_save


def home(request: HttpRequest) -> HttpResponse:
    by_stage = dict(
        Engagement.objects.values_list("stage").annotate(n=Count("pk")).values_list("stage", "n")
    )
    stages = [(label, by_stage.get(value, 0)) for value, label in Stage.choices]
    return render(
        request,
        "customers/home.html",
        {"customer_count": Customer.objects.count(), "stages": stages},
    )


@role_required(Role.ADMIN)
def engagement_settings(request: HttpRequest) -> HttpResponse:
    current = EngagementSettings.load()
    form = EngagementSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        mode = engagement_settings_save(
            settings=form.save(commit=False), changed=form.changed_data, user=request.user
        )
        note = {"full": " A full recompute has started.", "scores": " A rescore has started."}
        messages.success(request, "Engagement settings saved." + note.get(mode or "", ""))
        return redirect("engagement-settings")
    types = TouchpointType.objects.all()
    return render(request, "customers/settings.html", {"form": form, "types": types})


def _jobs_context() -> dict:
    runs = list(JobRun.objects.all()[:30])
    return {
        "runs": runs,
        "any_running": any(run.status == JobRun.Status.RUNNING for run in runs),
        "latest_fit": ModelFit.objects.order_by("-created_at").first(),
    }


@role_required(Role.ADMIN)
def jobs_page(request: HttpRequest) -> HttpResponse:
    return render(request, "customers/jobs.html", _jobs_context())


@role_required(Role.ADMIN)
def jobs_table(request: HttpRequest) -> HttpResponse:
    """The part of the jobs page that refreshes itself while a job runs."""
    return render(request, "customers/_jobs_table.html", _jobs_context())


JOB_STARTERS = {
    "refresh": ("customers.refresh", {}),
    "rescore": ("customers.rescore", {"full": True, "reason": "started by hand"}),
    "nightly": ("customers.nightly", {}),
}


@require_POST
@role_required(Role.ADMIN)
def jobs_start(request: HttpRequest) -> HttpResponse:
    from lifecycle.celery import app

    kind = request.POST.get("kind", "")
    if kind not in JOB_STARTERS:
        messages.error(request, f"Unknown job {kind!r}; choose refresh, rescore or nightly.")
        return redirect("jobs")
    task, kwargs = JOB_STARTERS[kind]
    if kind == "rescore":
        kwargs = {**kwargs, "triggered_by": request.user.username}
    app.send_task(task, kwargs=kwargs)
    messages.success(request, f"Started: {kind}. Its run appears below when a worker picks it up.")
    return redirect("jobs")


@role_required(Role.MARKETER, Role.CUSTOMER_SUCCESS, Role.ADMIN)
def customers_export(request: HttpRequest) -> HttpResponse:
    """CSV of all customers, or those picked by ``?ids=`` / simple filters (streamed)."""
    try:
        customers = customers_for_export(request.GET, user=request.user)
    except ExportFilterError as exc:
        return HttpResponseBadRequest(str(exc), content_type="text/plain; charset=utf-8")
    return customers_export_response(customers)

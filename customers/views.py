from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from audit.models import SettingsChange
from customers import charts
from customers.engagement import EngineConfig
from customers.export import ExportFilterError, customers_export_response, customers_for_export
from customers.forms import EngagementSettingsForm, TouchpointTypeFormSet
from customers.models import (
    EngagementSettings,
    JobRun,
    ModelFit,
    TouchpointType,
)
from customers.preview import settings_preview
from customers.roles import Role, role_required
from customers.services import engine_settings_update


def _settings_forms(request: HttpRequest):
    data = request.POST if request.method == "POST" else None
    form = EngagementSettingsForm(data, instance=EngagementSettings.load(), prefix="engine")
    types = TouchpointTypeFormSet(data, queryset=TouchpointType.objects.all(), prefix="types")
    return form, types


@role_required(Role.ADMIN)
def engagement_settings(request: HttpRequest) -> HttpResponse:
    form, types = _settings_forms(request)
    if request.method == "POST" and form.is_valid() and types.is_valid():
        mode = engine_settings_update(
            settings=form.save(commit=False),
            settings_changed=form.changed_data,
            types=[(f.save(commit=False), f.changed_data) for f in types.forms],
            user=request.user,
        )
        if mode is None:
            messages.success(request, "Engagement settings saved; no recomputation needed.")
        else:
            what = "A full recompute" if mode == "full" else "A rescore"
            messages.success(
                request,
                format_html(
                    "Engagement settings saved. {} has started: "
                    '<a href="{}">watch its progress on the Jobs page</a>.',
                    what,
                    reverse("jobs"),
                ),
            )
        return redirect("engagement-settings")
    changes = SettingsChange.objects.select_related("user")[:30]
    return render(
        request,
        "customers/settings.html",
        {"form": form, "types": types, "changes": changes},
    )


@require_POST
@role_required(Role.ADMIN)
def engagement_settings_preview(request: HttpRequest) -> HttpResponse:
    """The impact of the settings as edited on the page, computed without saving."""
    form, types = _settings_forms(request)
    if not (form.is_valid() and types.is_valid()):
        errors = [
            f"{form.fields[name].label if name in form.fields else 'Form'}: {' '.join(msgs)}"
            for name, msgs in form.errors.items()
        ] + [
            f"{sub.instance.label} {name.replace('_', ' ')}: {' '.join(msgs)}"
            for sub in types.forms
            for name, msgs in sub.errors.items()
        ]
        errors += list(types.non_form_errors())
        return render(request, "customers/_settings_preview.html", {"errors": errors})
    proposed = form.save(commit=False)
    rows = [
        (
            f.instance.pk,
            float(f.cleaned_data["weight"]),
            f.cleaned_data["counts_as_engagement"],
            f.cleaned_data["is_active"],
        )
        for f in types.forms
    ]
    result = settings_preview(proposed=EngineConfig.from_settings(proposed), types=rows)
    return render(
        request,
        "customers/_settings_preview.html",
        {"preview": result, "chart": charts.score_distribution_compare(result)},
    )


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

"""Plan screens: list, builder (htmx steps and email preview), launch, results, CS tasks.

Thin: forms shape input, ``campaigns.services`` writes (and checks roles and states),
``campaigns.selectors`` / ``campaigns.results`` read. Marketers and admins use the plan
screens; customer success works its tasks on the renewal-risk screen.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from campaigns import charts, guidance, results, selectors, services
from campaigns.forms import LaunchForm, PlanForm, StepForm
from campaigns.models import ActionKind, CsTask, Plan, PlanStep, TriggerKind
from customers.models import Customer
from customers.roles import Role, role_required
from segments.models import Segment

MARKETING = (Role.MARKETER, Role.ADMIN)
PREVIEW_ACTIONS = (ActionKind.EMAIL, ActionKind.SURVEY)


def _error_text(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return " ".join(
            f"{'' if k == '__all__' else k + ': '}{' '.join(m for e in v for m in e.messages)}"
            for k, v in exc.error_dict.items()
        )
    return " ".join(exc.messages)


def _is_htmx(request: HttpRequest) -> bool:
    return bool(request.headers.get("HX-Request"))


@role_required(*MARKETING)
def plan_list(request: HttpRequest) -> HttpResponse:
    plans = list(Plan.objects.select_related("segment").order_by("-priority", "id"))
    overview = results.plans_overview(plans)
    rows = [(p, overview.get(p.pk) or results.Comparison("", key=str(p.pk))) for p in plans]
    return render(request, "campaigns/plan_list.html", {"rows": rows})


@role_required(*MARKETING)
def plan_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PlanForm(request.POST)
        if form.is_valid():
            fields = form.plan_fields()
            name = fields.pop("name")
            try:
                plan = services.plan_create(user=request.user, name=name, **fields)
            except ValidationError as exc:
                form.add_error(None, _error_text(exc))
            else:
                messages.success(request, f"Plan “{plan.name}” created. Add its steps.")
                return redirect("plan-builder", pk=plan.pk)
    else:
        initial: dict[str, Any] = {}
        segment = Segment.objects.filter(pk=request.GET.get("segment") or 0).first()
        if segment is not None:
            initial = {
                "segment": segment.pk,
                "trigger_kind": TriggerKind.SEGMENT_ONCE,
                "name": f"Win back: {segment.name}"[:120],
            }
        form = PlanForm(initial=initial)
    return render(request, "campaigns/plan_new.html", {"form": form})


def _builder_context(plan: Plan, **extra: Any) -> dict[str, Any]:
    steps = list(plan.steps.order_by("position", "id"))
    return {
        "plan": plan,
        "steps": steps,
        "step_form": extra.pop("step_form", None) or StepForm(),
        "preview_actions": PREVIEW_ACTIONS,
        **extra,
    }


@role_required(*MARKETING)
def plan_builder(request: HttpRequest, pk: int) -> HttpResponse:
    """Plan settings and its ladder of steps; POST saves the settings."""
    plan = get_object_or_404(Plan.objects.select_related("segment"), pk=pk)
    if request.method == "POST":
        form = PlanForm(request.POST)
        if form.is_valid():
            try:
                services.plan_update(plan=plan, user=request.user, **form.plan_fields())
            except ValidationError as exc:
                form.add_error(None, _error_text(exc))
            else:
                messages.success(request, "Plan saved.")
                return redirect("plan-builder", pk=plan.pk)
    else:
        form = PlanForm(initial=PlanForm.initial_for(plan))
    return render(request, "campaigns/plan_builder.html", _builder_context(plan, form=form))


def _steps_response(request: HttpRequest, plan: Plan, **extra: Any) -> HttpResponse:
    """The steps block (htmx) or, without htmx, back to the builder."""
    if _is_htmx(request):
        plan.refresh_from_db()
        return render(request, "campaigns/_steps.html", _builder_context(plan, **extra))
    if extra.get("step_error"):
        messages.error(request, extra["step_error"])
    return redirect("plan-builder", pk=plan.pk)


@require_POST
@role_required(*MARKETING)
def step_add(request: HttpRequest, pk: int) -> HttpResponse:
    plan = get_object_or_404(Plan, pk=pk)
    form = StepForm(request.POST)
    if form.is_valid():
        try:
            services.step_add(
                plan=plan,
                user=request.user,
                action=form.cleaned_data["action"],
                config=form.config(),
                delay_days=form.cleaned_data["delay_days"],
                delay_basis=form.cleaned_data["delay_basis"],
            )
        except ValidationError as exc:
            form.apply_errors(exc)
        else:
            return _steps_response(request, plan)
    # htmx swaps only 2xx answers: the steps block comes back with the form's errors.
    if not _is_htmx(request):
        messages.error(request, "The step was not added: " + form.errors.as_text())
    return _steps_response(request, plan, step_form=form, step_form_open=True)


@require_POST
@role_required(*MARKETING)
def step_remove(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    plan = get_object_or_404(Plan, pk=pk)
    step = get_object_or_404(PlanStep, pk=step_pk, plan=plan)
    try:
        services.step_remove(step=step, user=request.user)
    except ValidationError as exc:
        return _steps_response(request, plan, step_error=_error_text(exc))
    return _steps_response(request, plan)


@require_POST
@role_required(*MARKETING)
def step_move(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    """Move a step one place up or down (``direction``), via ``steps_reorder``."""
    plan = get_object_or_404(Plan, pk=pk)
    ids = list(plan.steps.order_by("position", "id").values_list("pk", flat=True))
    if step_pk not in ids:
        return _steps_response(request, plan, step_error="That step is not in this plan.")
    i = ids.index(step_pk)
    j = i - 1 if request.POST.get("direction") == "up" else i + 1
    if 0 <= j < len(ids):
        ids[i], ids[j] = ids[j], ids[i]
        try:
            services.steps_reorder(plan=plan, user=request.user, step_ids=ids)
        except ValidationError as exc:
            return _steps_response(request, plan, step_error=_error_text(exc))
    return _steps_response(request, plan)


def _preview_customer(plan: Plan, raw: str) -> Customer | None:
    """The customer to preview with: the one asked for (id or external id), else the first
    customer the plan's trigger matches, else any customer."""
    if raw:
        q = Q(external_id=raw) | Q(email__iexact=raw)
        if raw.isdigit():
            q |= Q(pk=int(raw))
        return Customer.objects.filter(q).select_related("engagement").first()
    match = (
        selectors.trigger_customers(plan, now=timezone.now())
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    qs = Customer.objects.select_related("engagement")
    return qs.filter(pk=match).first() if match else qs.order_by("pk").first()


@require_GET
@role_required(*MARKETING)
def step_preview(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    """The step's email rendered for a real customer (htmx partial)."""
    plan = get_object_or_404(Plan.objects.select_related("segment"), pk=pk)
    step = get_object_or_404(PlanStep, pk=step_pk, plan=plan)
    raw = request.GET.get("customer", "").strip()
    customer = _preview_customer(plan, raw)
    context: dict[str, Any] = {"plan": plan, "step": step, "customer": customer, "asked": raw}
    if customer is None:
        context["error"] = (
            f"No customer “{raw}”: give an id, external id or email."
            if raw
            else "No customers yet."
        )
    else:
        try:
            context["email"] = guidance.preview_email(step, customer)
        except Exception as exc:  # a template error in the step's text: show it, do not 500
            context["error"] = f"Cannot render this step: {exc}"
    return render(request, "campaigns/_preview.html", context)


@role_required(*MARKETING)
def plan_launch(request: HttpRequest, pk: int) -> HttpResponse:
    """Launch screen: segment, start, holdout, who will be enrolled / suppressed, guidance."""
    plan = get_object_or_404(Plan.objects.select_related("segment"), pk=pk)
    seg_default = request.GET.get("segment") or plan.segment_id
    initial = {"segment": seg_default, "holdout_percent": plan.holdout_percent}
    if request.method == "POST":
        form = LaunchForm(request.POST, plan=plan)
        if form.is_valid():
            d = form.cleaned_data
            try:
                services.plan_launch(
                    plan,
                    request.user,
                    segment=d["segment"],
                    start_at=d["start_at"],
                    holdout_percent=d["holdout_percent"],
                )
            except ValidationError as exc:
                form.add_error(None, _error_text(exc))
            else:
                plan.refresh_from_db()
                when = (
                    "now"
                    if plan.status == Plan.Status.ACTIVE
                    else f"at {timezone.localtime(plan.start_at):%b %d, %H:%M}"
                )
                messages.success(request, f"“{plan.name}” launched: it starts enrolling {when}.")
                return redirect("plan-results", pk=plan.pk)
    else:
        form = LaunchForm(initial=initial, plan=plan)
    segment = _chosen_segment(form, plan, seg_default)
    holdout = _chosen_holdout(form, plan)
    context = {
        "plan": plan,
        "form": form,
        "steps": list(plan.steps.order_by("position", "id")),
        **_audience_context(plan, segment, holdout),
    }
    return render(request, "campaigns/plan_launch.html", context)


def _chosen_segment(form: LaunchForm, plan: Plan, default: Any) -> Segment | None:
    raw = form.data.get("segment") if form.is_bound else default
    if raw in (None, ""):
        return plan.segment
    return Segment.objects.filter(pk=raw).first() if str(raw).isdigit() else None


def _chosen_holdout(form: LaunchForm, plan: Plan) -> int:
    raw = form.data.get("holdout_percent") if form.is_bound else None
    try:
        value = int(raw) if raw not in (None, "") else plan.holdout_percent
    except (TypeError, ValueError):
        return plan.holdout_percent
    return min(max(value, 0), 90)


def _audience_context(plan: Plan, segment: Segment | None, holdout: int) -> dict[str, Any]:
    if plan.trigger_kind == TriggerKind.SEGMENT_ONCE and segment is None:
        return {"segment": None, "holdout": holdout, "audience": None}
    audience = selectors.launch_audience(plan, segment, holdout_percent=holdout)
    advice = guidance.sample_size_advice(
        eligible=audience.eligible, holdout_percent=holdout, segment=segment
    )
    moments = results.best_moments(
        segment_id=segment.pk if segment else None,
        labels={str(segment.pk): segment.name} if segment else {},
    )
    moment = moments[0] if moments else None
    return {
        "segment": segment,
        "holdout": holdout,
        "audience": audience,
        "advice": advice,
        "moment": moment,
        "moment_chart": charts.best_moment_figure(moment) if moment else None,
    }


@require_GET
@role_required(*MARKETING)
def launch_audience(request: HttpRequest, pk: int) -> HttpResponse:
    """htmx: the audience and guidance block for the segment / holdout being chosen."""
    plan = get_object_or_404(Plan.objects.select_related("segment"), pk=pk)
    form = LaunchForm(request.GET, plan=plan)
    segment = _chosen_segment(form, plan, plan.segment_id)
    holdout = _chosen_holdout(form, plan)
    context = {"plan": plan, **_audience_context(plan, segment, holdout)}
    return render(request, "campaigns/_audience.html", context)


def _status_change(request: HttpRequest, pk: int, change, done: str) -> HttpResponse:
    plan = get_object_or_404(Plan, pk=pk)
    try:
        change(plan, request.user)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"“{plan.name}” {done}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = reverse("plan-results", args=[plan.pk])
    return redirect(back)


@require_POST
@role_required(*MARKETING)
def plan_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _status_change(request, pk, services.plan_pause, "paused")


@require_POST
@role_required(*MARKETING)
def plan_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _status_change(request, pk, services.plan_resume, "resumed")


@require_POST
@role_required(*MARKETING)
def plan_stop(request: HttpRequest, pk: int) -> HttpResponse:
    return _status_change(request, pk, services.plan_stop, "stopped")


@role_required(*MARKETING)
def plan_results(request: HttpRequest, pk: int) -> HttpResponse:
    plan = get_object_or_404(Plan.objects.select_related("segment"), pk=pk)
    res = results.plan_results_stored(plan)
    moments = [(m, charts.best_moment_figure(m)) for m in res.moments[:4]]
    context = {
        "plan": plan,
        "res": res,
        "curve_chart": charts.cumulative_figure(res.curve),
        "lift_chart": charts.lift_figure([res.overall, *res.steps]),
        "moments": moments,
    }
    return render(request, "campaigns/plan_results.html", context)


@require_POST
@role_required(*MARKETING)
def plan_results_refresh(request: HttpRequest, pk: int) -> HttpResponse:
    """Recompute the stored results now (they are otherwise refreshed by the plan tick)."""
    plan = get_object_or_404(Plan, pk=pk)
    snapshot = results.results_refresh(plan)
    messages.success(request, f"Results recomputed in {snapshot.duration_ms:,} ms.")
    return redirect("plan-results", pk=plan.pk)


@role_required(*MARKETING)
def segment_plans(request: HttpRequest, segment_pk: int) -> HttpResponse:
    """The segments screen's "launch a plan": pick a draft plan or start a new one."""
    segment = get_object_or_404(Segment, pk=segment_pk)
    drafts = list(
        Plan.objects.filter(status=Plan.Status.DRAFT)
        .annotate(step_count=Count("steps"))
        .order_by("-priority", "id")
    )
    return render(request, "campaigns/segment_plans.html", {"segment": segment, "drafts": drafts})


@require_POST
@role_required(Role.CUSTOMER_SUCCESS, Role.ADMIN)
def cs_task_done(request: HttpRequest, task_pk: int) -> HttpResponse:
    """Mark one of the CS tasks done (from the renewal-risk screen)."""
    task = get_object_or_404(CsTask, pk=task_pk)
    services.cs_task_complete(task, request.user)
    if _is_htmx(request):
        return render(request, "campaigns/_cs_task_row.html", {"task": task, "now": timezone.now()})
    messages.success(request, f"Task “{task.title}” done.")
    return redirect("renewal-risk")

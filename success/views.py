from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from campaigns.selectors import cs_tasks_for, cs_tasks_unassigned
from customers.models import Customer
from customers.roles import Role, has_role, role_required
from success.export import renewal_risk_csv_response
from success.forms import NoteForm, RiskFilterForm
from success.risk import renewal_risk_ensure
from success.selectors import (
    FALLING_TREND,
    LOW_SCORE,
    renewal_risk_accounts,
    renewal_risk_rows,
    renewal_risk_summary,
)
from success.services import NoteError, customer_note_add

PAGE_SIZE = 50
CS_TASKS_SHOWN = 100


def _accounts(request: HttpRequest, form: RiskFilterForm):
    return renewal_risk_accounts(
        days=form.cleaned_data["days"],
        owner=request.user if form.cleaned_data["mine"] else None,
    )


@role_required(Role.CUSTOMER_SUCCESS, Role.ADMIN)
def renewal_risk(request: HttpRequest) -> HttpResponse:
    form = RiskFilterForm(request.GET)
    context: dict = {"form": form, "low_score": LOW_SCORE, "falling": -FALLING_TREND}
    if form.is_valid():
        renewal_risk_ensure()
        accounts = _accounts(request, form)
        summary = renewal_risk_summary(
            days=form.cleaned_data["days"],
            owner=request.user if form.cleaned_data["mine"] else None,
        )
        # The count comes from the summary: no second COUNT query for the paginator.
        paginator = Paginator(accounts, PAGE_SIZE)
        paginator.count = summary.accounts
        page = paginator.get_page(form.cleaned_data["page"] or 1)
        context.update(
            summary=summary,
            page=page,
            rows=renewal_risk_rows(page.object_list),
            note_form=NoteForm(),
            query=request.GET.copy(),
        )
        context["query"].pop("page", None)
    # Tasks plans made for this user's accounts (and, for admins, the unassigned ones).
    context["cs_tasks"] = list(cs_tasks_for(request.user)[:CS_TASKS_SHOWN])
    if has_role(request.user, Role.ADMIN):
        context["cs_tasks_unassigned"] = list(cs_tasks_unassigned()[:CS_TASKS_SHOWN])
    context["now"] = timezone.now()
    status = 200 if form.is_valid() else 400
    return render(request, "success/renewal_risk.html", context, status=status)


@role_required(Role.CUSTOMER_SUCCESS, Role.ADMIN)
def renewal_risk_export(request: HttpRequest) -> HttpResponse:
    form = RiskFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            "Cannot export: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()),
            status=400,
            content_type="text/plain",
        )
    renewal_risk_ensure()
    filename = f"renewal-risk-{timezone.localdate():%Y-%m-%d}.csv"
    return renewal_risk_csv_response(_accounts(request, form), filename=filename)


@require_POST
@role_required(Role.CUSTOMER_SUCCESS, Role.ADMIN)
def customer_note_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a note / mark contacted; answers htmx with the refreshed notes block."""
    customer = get_object_or_404(Customer, pk=pk)
    form = NoteForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            customer_note_add(
                customer=customer,
                author=request.user,
                body=form.cleaned_data["body"],
                kind=form.cleaned_data["kind"],
            )
        except NoteError as exc:
            error = str(exc)
    else:
        error = " ".join(f"{' '.join(v)}" for v in form.errors.values())
    if request.headers.get("HX-Request"):
        prefetch_related_objects([customer], "notes__author")
        return render(
            request,
            "success/_customer_notes.html",
            {"customer": customer, "note_error": error, "note_form": form if error else None},
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Note saved on {customer}.")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        back = reverse("renewal-risk")
    return redirect(back)

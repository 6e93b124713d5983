"""Staff screens: dashboard, customer list and customer page (thin views over selectors)."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.db.models import prefetch_related_objects
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from customers.dashboard import dashboard_context
from customers.engagement import engagement_explain
from customers.filters import CustomerFilter
from customers.listing import (
    DEFAULT_SORT,
    SORTS,
    BadCursor,
    engine_joined,
    keyset_page,
    result_count,
)
from customers.models import Customer, Engagement
from customers.profile import (
    customer_profile,
    score_gauge_figure,
    score_history_figure,
    stage_timeline_figure,
    touchpoint_timeline_figure,
)
from customers.roles import Role, has_role, role_required
from customers.selectors import customers_with_state

MARKETING = (Role.MARKETER, Role.ADMIN)
CUSTOMER_VIEWERS = (Role.MARKETER, Role.CUSTOMER_SUCCESS, Role.ADMIN)


def home(request: HttpRequest) -> HttpResponse:
    """The dashboard for marketers and admins; customer success starts at the customer list;
    a user without a role is told to ask for one."""
    if has_role(request.user, *MARKETING):
        return render(request, "customers/home.html", dashboard_context())
    if has_role(request.user, *CUSTOMER_VIEWERS):
        return redirect("customer-list")
    return render(request, "customers/no_role.html")


def screen_filter(data, *, now: datetime | None = None) -> CustomerFilter:
    """A CustomerFilter over all customers with its form laid out for screens (stage and
    spend tier as checkboxes)."""
    filterset = CustomerFilter(data, queryset=Customer.objects.all(), now=now)
    for name in ("stage", "spend_tier"):
        field = filterset.form.fields[name]
        field.widget = forms.CheckboxSelectMultiple(choices=field.choices)
    return filterset


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def filter_query(params: QueryDict, filterset: CustomerFilter) -> str:
    """The query string of just the filter parameters (for export and segment links)."""
    kept = QueryDict(mutable=True)
    cleaned = filterset.form.cleaned_data if filterset.is_valid() else {}
    for name in filterset.filters:
        values = [v for v in params.getlist(name) if v != ""]
        if values and not (cleaned and cleaned.get(name) in (None, "", [])):
            kept.setlist(name, values)
    return kept.urlencode()


@role_required(*CUSTOMER_VIEWERS)
def customer_list(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    sort_name = request.GET.get("sort") or DEFAULT_SORT
    if sort_name not in SORTS:
        sort_name = DEFAULT_SORT
    sort = SORTS[sort_name]
    filterset = screen_filter(request.GET, now=now)
    context = {
        "filter": filterset,
        "sorts": [(name, s.label) for name, s in SORTS.items()],
        "sort": sort_name,
        "query": filter_query(request.GET, filterset),
        "page": None,
        "total": None,
        "cursor_error": "",
    }
    if filterset.is_valid():
        rows = customers_with_state(engine_joined(filterset.qs), now=now)
        try:
            page = keyset_page(rows, sort, after=request.GET.get("after") or None)
        except BadCursor:
            context["cursor_error"] = "That page link is no longer valid; showing the first page."
            page = keyset_page(rows, sort)
        context["page"] = page
        context["total"] = result_count(filterset.qs)
    template = "customers/_customer_results.html" if is_htmx(request) else "customers/list.html"
    return render(request, template, context)


@role_required(*CUSTOMER_VIEWERS)
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    now = timezone.now()
    customer = get_object_or_404(customers_with_state(now=now), pk=pk)
    # Notes with their authors in two queries, not one per note (success/_customer_notes).
    prefetch_related_objects([customer], "notes__author")
    try:
        explanation = engagement_explain(customer, now=now)
    except Engagement.DoesNotExist:
        explanation = None
    profile = customer_profile(customer, now=now)
    return render(
        request,
        "customers/detail.html",
        {
            "customer": customer,
            "explanation": explanation,
            "profile": profile,
            "gauge": score_gauge_figure(customer.score or 0.0),
            "history_chart": score_history_figure(profile.history),
            "stage_chart": stage_timeline_figure(profile.changes, now=now),
            "touchpoint_chart": touchpoint_timeline_figure(profile.touchpoints),
        },
    )

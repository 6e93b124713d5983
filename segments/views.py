"""Segment screens: list, builder with live count, detail, compare, plan entry point."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from customers.filters import CustomerFilter
from customers.listing import result_count
from customers.models import Customer
from customers.roles import Role, role_required
from customers.screens import screen_filter
from segments import charts
from segments.forms import SegmentForm
from segments.models import Segment, SegmentSize
from segments.selectors import (
    active_filter_summary,
    params_querydict,
    score_distribution,
    segment_customers,
    stage_mix,
)
from segments.services import segment_params_clean, segment_save

MARKETING = (Role.MARKETER, Role.ADMIN)
TREND_DAYS = 90


def builder_filter(data) -> CustomerFilter:
    return screen_filter(data)


@role_required(*MARKETING)
def segment_list(request: HttpRequest) -> HttpResponse:
    segments = list(Segment.objects.select_related("created_by"))
    since = timezone.now().date() - timezone.timedelta(days=TREND_DAYS)
    series: dict[str, list[SegmentSize]] = {s.name: [] for s in segments}
    names = {s.pk: s.name for s in segments}
    for size in SegmentSize.objects.filter(day__gte=since).order_by("day"):
        series[names[size.segment_id]].append(size)
    return render(
        request,
        "segments/list.html",
        {"segments": segments, "trend_chart": charts.size_trend_figure(series)},
    )


def _builder(request: HttpRequest, segment: Segment | None) -> HttpResponse:
    if request.method == "POST":
        form = SegmentForm(request.POST, instance=segment)
        filterset = builder_filter(request.POST)
        if form.is_valid():
            try:
                saved = segment_save(
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    params=_filter_data(request.POST, filterset),
                    user=request.user,
                    segment=segment,
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    target = field if field in form.fields else None
                    for error in errors:
                        form.add_error(target, error)
            else:
                messages.success(request, f"Segment “{saved.name}” saved.")
                return redirect("segment-detail", pk=saved.pk)
        status = 400
    else:
        initial = params_querydict(segment.params) if segment else request.GET
        form = SegmentForm(instance=segment)
        filterset = builder_filter(initial or None)
        status = 200
    count = _live_count(filterset) if filterset.is_bound else result_count(Customer.objects.all())
    return render(
        request,
        "segments/builder.html",
        {"form": form, "filter": filterset, "segment": segment, "count": count},
        status=status,
    )


def _filter_data(data, filterset: CustomerFilter):
    """Only the filter fields of a POST (not the CSRF token, name or description)."""
    kept = data.copy()
    for key in list(kept):
        if key not in filterset.filters:
            del kept[key]
    return kept


def _live_count(filterset: CustomerFilter):
    if not filterset.is_valid():
        return None
    return result_count(filterset.qs)


@role_required(*MARKETING)
def segment_new(request: HttpRequest) -> HttpResponse:
    return _builder(request, None)


@role_required(*MARKETING)
def segment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _builder(request, get_object_or_404(Segment, pk=pk))


@role_required(*MARKETING)
def segment_count(request: HttpRequest) -> HttpResponse:
    """Live count while a segment is edited (htmx); errors are returned in words."""
    filterset = CustomerFilter(request.GET, queryset=Customer.objects.all())
    try:
        segment_params_clean(_filter_data(request.GET, filterset))
    except ValidationError as exc:
        return render(
            request,
            "segments/_count.html",
            {"count": None, "errors": [e for es in exc.message_dict.values() for e in es]},
        )
    return render(request, "segments/_count.html", {"count": _live_count(filterset)})


@role_required(*MARKETING)
def segment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    since = timezone.now().date() - timezone.timedelta(days=TREND_DAYS)
    context = {"segment": segment, "summary": active_filter_summary(segment.params)}
    try:
        customers = segment_customers(segment)
    except ValueError as exc:
        context["broken"] = str(exc)
        return render(request, "segments/detail.html", context)
    mix = stage_mix(customers)
    context.update(
        {
            "query": segment.query_string,
            "mix_chart": charts.stage_mix_figure({segment.name: mix}),
            "score_chart": charts.score_distribution_figure(
                {segment.name: score_distribution(customers)}
            ),
            "trend_chart": charts.size_trend_figure(
                {segment.name: list(segment.sizes.filter(day__gte=since))}
            ),
            "others": Segment.objects.exclude(pk=segment.pk),
            "size_now": sum(mix.values()),
        }
    )
    return render(request, "segments/detail.html", context)


@role_required(*MARKETING)
def segment_compare(request: HttpRequest) -> HttpResponse:
    chosen = [request.GET.get("a"), request.GET.get("b")]
    segments = list(Segment.objects.all())
    by_id = {str(s.pk): s for s in segments}
    context: dict = {"segments": segments, "a": chosen[0], "b": chosen[1], "pair": None}
    if all(chosen) and chosen[0] != chosen[1] and all(c in by_id for c in chosen):
        pair = [by_id[c] for c in chosen]
        mixes, scores, sizes = {}, {}, {}
        since = timezone.now().date() - timezone.timedelta(days=TREND_DAYS)
        rows = []
        for segment in pair:
            customers = segment_customers(segment)
            mixes[segment.name] = stage_mix(customers)
            scores[segment.name] = score_distribution(customers)
            sizes[segment.name] = list(segment.sizes.filter(day__gte=since))
            rows.append((segment, sum(mixes[segment.name].values())))
        context.update(
            {
                "pair": rows,
                "mix_chart": charts.stage_mix_figure(mixes),
                "score_chart": charts.score_distribution_figure(scores),
                "trend_chart": charts.size_trend_figure(sizes),
            }
        )
    elif any(chosen):
        context["error"] = "Choose two different saved segments."
    return render(request, "segments/compare.html", context)


@role_required(*MARKETING)
def segment_launch(request: HttpRequest, pk: int) -> HttpResponse:
    """Entry point for launching a re-engagement plan on a segment: the plans app's page
    (pick a draft plan to launch on it, or start a new plan for it)."""
    from campaigns.views import segment_plans

    return segment_plans(request, pk)


@require_POST
@role_required(*MARKETING)
def segment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    segment = get_object_or_404(Segment, pk=pk)
    segment.delete()
    messages.success(request, f"Segment “{segment.name}” deleted.")
    return redirect("segment-list")

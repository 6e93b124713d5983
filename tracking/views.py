"""Admin screen of the tracking API (``/settings/tracking/``): sources and write keys, the
event-name → touchpoint-type mapping, event names waiting for a mapping, refused messages.

Each action answers htmx with the section it changed (a new write key is rendered into that
answer once and never again); without htmx it answers with the whole page.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from customers.models import TouchpointType
from customers.roles import Role, role_required
from tracking import selectors
from tracking.forms import EventMappingForm, SourceForm
from tracking.models import EventMapping, Source, UnmappedEvent, WriteKey
from tracking.services import (
    event_mapping_delete,
    event_mapping_save,
    source_create,
    write_key_add,
    write_key_revoke,
)
from tracking.tasks import backfill_enqueue


def _context(request: HttpRequest, **extra: Any) -> dict:
    context = {
        "sources": selectors.sources_with_keys(),
        "source_form": SourceForm(),
        "mappings": selectors.event_mappings(),
        "mapping_form": EventMappingForm(),
        "unmapped": selectors.unmapped_event_names(),
        "types": TouchpointType.objects.filter(is_active=True).order_by("label"),
        "rejected": selectors.rejected_recent(),
        "api_base": request.build_absolute_uri("/").rstrip("/"),
    }
    context.update(extra)
    return context


def _answer(request: HttpRequest, partial: str, **extra: Any) -> HttpResponse:
    template = partial if request.headers.get("HX-Request") else "tracking/settings.html"
    return render(request, template, _context(request, **extra))


@role_required(Role.ADMIN)
def tracking_settings(request: HttpRequest) -> HttpResponse:
    return render(request, "tracking/settings.html", _context(request))


@require_POST
@role_required(Role.ADMIN)
def source_add(request: HttpRequest) -> HttpResponse:
    form = SourceForm(request.POST)
    if not form.is_valid():
        return _answer(request, "tracking/_sources.html", source_form=form)
    source, key = source_create(name=form.cleaned_data["name"], user=request.user)
    return _answer(request, "tracking/_sources.html", new_key=key, new_key_source=source)


@require_POST
@role_required(Role.ADMIN)
def key_add(request: HttpRequest, source_id: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=source_id)
    _, key = write_key_add(source=source, user=request.user)
    return _answer(request, "tracking/_sources.html", new_key=key, new_key_source=source)


@require_POST
@role_required(Role.ADMIN)
def key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(WriteKey, pk=key_id)
    write_key_revoke(key=key)
    return _answer(request, "tracking/_sources.html", notice=f"Key {key.prefix}… revoked.")


@require_POST
@role_required(Role.ADMIN)
def mapping_save(request: HttpRequest) -> HttpResponse:
    form = EventMappingForm(request.POST)
    if not form.is_valid():
        return _answer(request, "tracking/_events.html", mapping_form=form)
    mapping, waiting = event_mapping_save(
        event_name=form.cleaned_data["event_name"],
        type=form.cleaned_data["type"],
        user=request.user,
    )
    notice = f"“{mapping.event_name}” now becomes “{mapping.type.label}”."
    if waiting:
        notice += f" {waiting:,} stored events of this name are being converted."
    return _answer(request, "tracking/_events.html", events_notice=notice)


@require_POST
@role_required(Role.ADMIN)
def mapping_delete(request: HttpRequest, mapping_id: int) -> HttpResponse:
    mapping = get_object_or_404(EventMapping, pk=mapping_id)
    event_mapping_delete(mapping=mapping)
    notice = f"“{mapping.event_name}” is no longer mapped; its events are stored from now on."
    return _answer(request, "tracking/_events.html", events_notice=notice)


@require_POST
@role_required(Role.ADMIN)
def backfill_run(request: HttpRequest) -> HttpResponse:
    """Convert again what is left of a mapped name (after an interrupted backfill)."""
    name = request.POST.get("event_name", "")
    waiting = UnmappedEvent.objects.filter(event_name=name).count()
    if EventMapping.objects.filter(event_name=name).exists() and waiting:
        backfill_enqueue(name)
        notice = f"Converting {waiting:,} stored “{name}” events."
    else:
        notice = f"Nothing to convert for “{name}”: map the name first."
    return _answer(request, "tracking/_events.html", events_notice=notice)

"""Writing segments: validated saves and daily size records."""

from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import QueryDict
from django.utils import timezone

from customers.filters import CustomerFilter
from customers.models import Customer
from segments.models import Segment, SegmentSize
from segments.selectors import params_querydict, segment_size


def segment_params_clean(data: QueryDict | dict) -> dict[str, list[str]]:
    """The filter parameters of ``data`` in canonical form (name → list of values, empty
    values dropped), validated through ``CustomerFilter``.

    Raises ``ValidationError`` naming each bad field (unknown names included), so a segment
    can never be saved with a filter that would silently match something else.
    """
    if not isinstance(data, QueryDict):
        data = params_querydict(
            {k: v if isinstance(v, list | tuple) else [v] for k, v in data.items()}
        )
    filterset = CustomerFilter(data, queryset=Customer.objects.none())
    known = set(filterset.filters)
    errors: dict[str, list[str]] = {}
    if not filterset.is_valid():
        for name, messages in filterset.errors.items():
            label = filterset.filters[name].label if name in filterset.filters else name
            errors[name] = [f"{label}: {m}" for m in messages]
    params: dict[str, list[str]] = {}
    for name in data:
        values = [v for v in data.getlist(name) if str(v).strip() != ""]
        if not values:
            continue
        if name not in known:
            errors[name] = [f"Unknown filter {name!r}; use one of: {', '.join(sorted(known))}."]
            continue
        if name not in errors and filterset.form.cleaned_data.get(name) in (None, "", []):
            continue  # a value meaning "any" (e.g. email opt-out "unknown"): no filter
        params[name] = values
    if errors:
        raise ValidationError(errors)
    return params


@transaction.atomic
def segment_save(
    *,
    name: str,
    description: str,
    params: QueryDict | dict,
    user,
    segment: Segment | None = None,
) -> Segment:
    """Create or update a segment from filter params (validated), record its size today."""
    cleaned = segment_params_clean(params)
    segment = segment or Segment(created_by=user)
    segment.name = name.strip()
    segment.description = description.strip()
    segment.params = cleaned
    if not segment.name:
        raise ValidationError({"name": ["Give the segment a name."]})
    segment.full_clean(exclude=["created_by"])
    segment.save()
    segment_size_record(segment=segment)
    return segment


def segment_size_record(*, segment: Segment, day: date | None = None) -> SegmentSize:
    """Count the segment now (estimate when large) and store it as ``day``'s size and as
    the segment's cached size. Idempotent per day."""
    now = timezone.now()
    size = segment_size(segment, now=now)
    Segment.objects.filter(pk=segment.pk).update(
        cached_size=size.value, cached_size_exact=size.exact, size_counted_at=now
    )
    segment.cached_size, segment.cached_size_exact, segment.size_counted_at = (
        size.value,
        size.exact,
        now,
    )
    record, _ = SegmentSize.objects.update_or_create(
        segment=segment,
        day=day or now.date(),
        defaults={"customers": size.value, "exact": size.exact},
    )
    return record


def segment_sizes_record_all(*, day: date | None = None) -> int:
    """Record today's size of every segment (the daily beat task); returns how many."""
    done = 0
    for segment in Segment.objects.all():
        try:
            segment_size_record(segment=segment, day=day)
        except ValueError:
            continue  # a stored filter that no longer validates: shown as such on its page
        done += 1
    return done

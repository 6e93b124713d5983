"""Building a settings-page POST the way the browser sends it (engine form + types table)."""

from __future__ import annotations

from django.urls import reverse


def settings_form_data(client, **engine_changes) -> dict:
    """Every field of the settings page as currently stored, with ``engine_changes`` applied
    to the engine settings (by unprefixed field name). Edit ``types-N-weight`` etc. after."""
    context = client.get(reverse("engagement-settings")).context
    form, types = context["form"], context["types"]
    data = {form.add_prefix(name): form.initial[name] for name in form.fields}
    for name, value in engine_changes.items():
        data[form.add_prefix(name)] = value
    management = types.management_form
    data.update({management.add_prefix(k): v for k, v in management.initial.items()})
    for sub in types.forms:
        data[sub.add_prefix("id")] = sub.instance.pk
        data[sub.add_prefix("weight")] = sub.instance.weight
        if sub.instance.counts_as_engagement:
            data[sub.add_prefix("counts_as_engagement")] = "on"
        if sub.instance.is_active:
            data[sub.add_prefix("is_active")] = "on"
    return data


def type_prefix(client, key: str) -> str:
    """The form prefix (``types-N``) of the row for touchpoint type ``key``."""
    types = client.get(reverse("engagement-settings")).context["types"]
    return next(f.prefix for f in types.forms if f.instance.key == key)

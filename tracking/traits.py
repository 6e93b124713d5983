"""Segment traits → Customer fields: the spec's reserved traits land on their columns, every
other trait in ``Customer.traits``."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from customers.models import Customer, SpendTier
from tracking.messages import MessageError, time_parse

# Segment reserved trait → (Customer field, max length).
TEXT_TRAITS = {
    "email": ("email", 254),
    "name": ("name", 200),
    "plan": ("plan", 100),
    "region": ("region", 64),
}
SPEND_TIERS = {value for value, _ in SpendTier.choices}


def _text(name: str, value: Any, max_length: int) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise MessageError(f"traits.{name} must be a string.")
    text = str(value).strip()
    if len(text) > max_length:
        raise MessageError(f"traits.{name} is longer than {max_length} characters.")
    return text


def traits_fields(traits: dict) -> dict[str, Any]:
    """Customer column values carried by ``traits`` (validated); raises ``MessageError``.

    ``name`` wins over ``firstName`` + ``lastName``; ``company`` may be a string or the spec's
    object with a ``name``; ``createdAt`` (when the account was created) sets the signup date.
    """
    fields: dict[str, Any] = {}
    for trait, (column, max_length) in TEXT_TRAITS.items():
        if traits.get(trait) not in (None, ""):
            fields[column] = _text(trait, traits[trait], max_length)
    if "email" in fields:
        try:
            validate_email(fields["email"])
        except ValidationError:
            raise MessageError(
                f"traits.email {fields['email']!r} is not a valid email address."
            ) from None
    if "name" not in fields:
        parts = [
            _text(part, traits[part], 100)
            for part in ("firstName", "lastName")
            if traits.get(part) not in (None, "")
        ]
        if parts:
            fields["name"] = " ".join(parts)
    company = traits.get("company")
    if isinstance(company, dict):
        company = company.get("name")
    if company not in (None, ""):
        fields["company"] = _text("company", company, 200)
    tier = traits.get("spendTier", traits.get("spend_tier"))
    if tier not in (None, ""):
        if tier not in SPEND_TIERS:
            raise MessageError(
                f"traits.spendTier must be one of {', '.join(sorted(SPEND_TIERS))}; got {tier!r}."
            )
        fields["spend_tier"] = tier
    if traits.get("createdAt") not in (None, ""):
        created = traits["createdAt"]
        if isinstance(created, str) and len(created) == 10:
            try:
                fields["signup_date"] = date.fromisoformat(created)
            except ValueError:
                raise MessageError(f"traits.createdAt {created!r} is not a date.") from None
        else:
            fields["signup_date"] = time_parse("traits.createdAt", created).date()
    return fields


def traits_apply(customer: Customer, traits: dict, fields: dict[str, Any]) -> None:
    """Set ``fields`` on the customer and merge all ``traits`` into ``customer.traits``."""
    for column, value in fields.items():
        setattr(customer, column, value)
    if traits:
        customer.traits = {**(customer.traits or {}), **traits}

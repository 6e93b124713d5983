"""Input and output shapes of the REST API. Validation only: writes go through services."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.bulk import NUL_MESSAGE, json_storable
from api.timestamps import timestamp_parse
from customers.models import Customer, Stage, Touchpoint, TouchpointType

BULK_MAX_ITEMS = 10_000


def finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: unknown or unbounded numbers answer null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


class AwareDateTimeField(serializers.DateTimeField):
    """A timestamp that must carry its timezone and may not lie in the future (api.timestamps).

    DRF would silently read a naive timestamp in the server's zone; a sender in another zone
    would then be off by hours without noticing, so naive input is an error here.
    """

    def to_internal_value(self, value: Any) -> datetime:
        parsed, message = timestamp_parse(value, now=timezone.now())
        if message:
            raise serializers.ValidationError(message)
        return parsed


class KeyRelatedField(serializers.SlugRelatedField):
    """A related object named by a text key. Refuses what no key can be (a NUL character,
    which PostgreSQL cannot even compare: a 500 found by the schemathesis run) before
    looking it up."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


class EngagementStateSerializer(serializers.Serializer):
    """The engine's current view of a customer (``customers_with_state`` rows)."""

    stage = serializers.ChoiceField(
        source="engagement.stage", choices=Stage.choices, read_only=True
    )
    stage_since = serializers.DateTimeField(source="engagement.stage_since", read_only=True)
    score = serializers.SerializerMethodField(help_text="Live 0–100 engagement score.")
    p_alive = serializers.FloatField(
        source="score_state.p_alive",
        read_only=True,
        help_text="Probability the customer is still engaged (MBG/NBD); null before a fit.",
    )
    last_engagement_at = serializers.DateTimeField(
        source="score_state.last_engagement_at", read_only=True
    )
    recency_days = serializers.SerializerMethodField(
        help_text="Days since the last engagement action; null if none yet."
    )
    expected_gap_days = serializers.FloatField(
        source="score_state.expected_gap_days", read_only=True
    )
    frequency = serializers.IntegerField(source="score_state.frequency", read_only=True)
    trend_30d = serializers.FloatField(
        source="engagement.trend_30d",
        read_only=True,
        help_text="Score now minus score 30 days ago.",
    )

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_score(self, customer: Customer) -> float | None:
        score = getattr(customer, "score", None)
        return None if score is None else round(float(score), 2)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_recency_days(self, customer: Customer) -> float | None:
        state = getattr(customer, "score_state", None)
        if state is None or state.last_engagement_at is None:
            return None
        now = self.context.get("now") or timezone.now()
        return round((now - state.last_engagement_at).total_seconds() / 86400, 2)


class CustomerSerializer(serializers.ModelSerializer):
    owner = KeyRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        allow_null=True,
        help_text="Username of the account owner (a staff user).",
    )
    engagement = EngagementStateSerializer(source="*", read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "email",
            "name",
            "company",
            "plan",
            "region",
            "spend_tier",
            "lifetime_revenue",
            "signup_date",
            "renewal_date",
            "owner",
            "email_opt_out",
            "is_identified",
            "traits",
            "created_at",
            "updated_at",
            "engagement",
        ]
        read_only_fields = ["id", "is_identified", "created_at", "updated_at"]
        extra_kwargs = {
            "signup_date": {"required": False, "help_text": "Defaults to today on create."},
            "external_id": {
                "validators": [],  # checked below, with a message that says what to do
                "help_text": "Your system's id for this customer; unique.",
            },
        }

    def validate_external_id(self, value: str) -> str:
        value = value.strip()
        if not value:
            raise serializers.ValidationError("external_id may not be blank.")
        taken = Customer.objects.filter(external_id=value)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise serializers.ValidationError(
                f"A customer with external_id {value!r} already exists; update it with "
                f"PATCH or PUT /api/v1/customers/by-external-id/{value}/."
            )
        return value

    def validate_traits(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("traits must be a JSON object.")
        if not json_storable(value):
            raise serializers.ValidationError("traits contain a NUL character (\\u0000).")
        return value


class CustomerUpsertSerializer(CustomerSerializer):
    """PUT by external id: the external id comes from the URL, every field is optional."""

    class Meta(CustomerSerializer.Meta):
        read_only_fields = [*CustomerSerializer.Meta.read_only_fields, "external_id"]


class TypeContributionSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    channel = serializers.CharField()
    points = serializers.FloatField(help_text="Decayed raw points this type contributes now.")
    share = serializers.FloatField(help_text="Fraction of the positive raw score.")
    touchpoints = serializers.IntegerField()


class StageExplanationSerializer(serializers.Serializer):
    stage = serializers.CharField()
    rule = serializers.CharField(help_text="The stage rule that fired.")
    sentence = serializers.CharField()
    recency_days = serializers.SerializerMethodField()
    gap_days = serializers.SerializerMethodField()
    gap_is_own = serializers.BooleanField()
    cooling_after_days = serializers.SerializerMethodField()
    at_risk_after_days = serializers.SerializerMethodField()
    lapsed_after_days = serializers.SerializerMethodField()
    due_at = serializers.SerializerMethodField(
        help_text="When, with no new action, the stage would change next."
    )

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_recency_days(self, obj: Any) -> float | None:
        return finite(obj.recency_days)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_gap_days(self, obj: Any) -> float | None:
        return finite(obj.gap_days)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_cooling_after_days(self, obj: Any) -> float | None:
        return finite(obj.cooling_after)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_at_risk_after_days(self, obj: Any) -> float | None:
        return finite(obj.at_risk_after)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_lapsed_after_days(self, obj: Any) -> float | None:
        return finite(obj.lapsed_after)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_due_at(self, obj: Any) -> str | None:
        days = finite(obj.due_at)
        if days is None:
            return None
        return datetime.fromtimestamp(days * 86400, tz=UTC).isoformat()


class ExplanationSerializer(serializers.Serializer):
    score = serializers.SerializerMethodField()
    raw_points = serializers.FloatField()
    p_alive = serializers.SerializerMethodField()
    contributions = TypeContributionSerializer(many=True, help_text="Top contributing types.")
    stage = StageExplanationSerializer()

    @extend_schema_field(serializers.FloatField())
    def get_score(self, obj: Any) -> float | None:
        return finite(obj.score)

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_p_alive(self, obj: Any) -> float | None:
        return finite(obj.p_alive)


class CustomerDetailSerializer(CustomerSerializer):
    explanation = serializers.SerializerMethodField()

    class Meta(CustomerSerializer.Meta):
        fields = [*CustomerSerializer.Meta.fields, "explanation"]

    @extend_schema_field(ExplanationSerializer(allow_null=True))
    def get_explanation(self, customer: Customer) -> dict | None:
        explanation = self.context.get("explanation")
        return None if explanation is None else ExplanationSerializer(explanation).data


class TouchpointSerializer(serializers.ModelSerializer):
    customer_external_id = serializers.CharField(read_only=True)
    type = serializers.SlugRelatedField(slug_field="key", read_only=True)
    channel = serializers.CharField(source="type.channel", read_only=True)

    class Meta:
        model = Touchpoint
        fields = [
            "id",
            "customer",
            "customer_external_id",
            "type",
            "channel",
            "occurred_at",
            "value",
            "source",
            "idempotency_key",
            "properties",
            "received_at",
        ]
        read_only_fields = fields


class TouchpointCreateSerializer(serializers.Serializer):
    customer = serializers.PrimaryKeyRelatedField(
        queryset=Customer.objects.all(), required=False, help_text="Customer id…"
    )
    customer_external_id = serializers.CharField(
        required=False, max_length=255, help_text="…or the customer's external_id."
    )
    type = KeyRelatedField(
        slug_field="key",
        queryset=TouchpointType.objects.all(),
        help_text="Touchpoint type key, e.g. login.",
    )
    occurred_at = AwareDateTimeField(help_text="ISO 8601 with a timezone offset or Z.")
    value = serializers.DecimalField(
        max_digits=14, decimal_places=2, required=False, allow_null=True
    )
    source = serializers.CharField(max_length=64, required=False, default="api")
    idempotency_key = serializers.CharField(
        max_length=255,
        required=False,
        allow_null=True,
        help_text="The sender's event id; a repeat with the same source and key creates "
        "nothing new.",
    )
    properties = serializers.DictField(required=False, default=dict)

    def validate_properties(self, value: dict) -> dict:
        if not json_storable(value):
            raise serializers.ValidationError(NUL_MESSAGE)
        return value

    def validate_type(self, value: TouchpointType) -> TouchpointType:
        if not value.is_active:
            raise serializers.ValidationError(
                f"Touchpoint type {value.key!r} is switched off; an admin can reactivate it."
            )
        return value

    def validate(self, attrs: dict) -> dict:
        external_id = attrs.pop("customer_external_id", None)
        if "customer" in attrs and external_id is not None:
            raise serializers.ValidationError(
                {"customer": ["Give either customer or customer_external_id, not both."]}
            )
        if external_id is not None:
            customer = Customer.objects.filter(external_id=external_id).first()
            if customer is None:
                raise serializers.ValidationError(
                    {
                        "customer_external_id": [
                            f"No customer with external_id {external_id!r}. Create it first "
                            f"with PUT /api/v1/customers/by-external-id/{external_id}/."
                        ]
                    }
                )
            attrs["customer"] = customer
        if "customer" not in attrs:
            raise serializers.ValidationError(
                {"customer": ["Give customer (id) or customer_external_id."]}
            )
        return attrs


class TouchpointTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = TouchpointType
        fields = [
            "key",
            "label",
            "channel",
            "weight",
            "counts_as_engagement",
            "is_active",
            "description",
        ]


# --- bulk: documentation shapes (the view validates items itself, for speed) ----------------


class BulkItemSerializer(serializers.Serializer):
    customer_external_id = serializers.CharField(
        max_length=255, help_text="An existing customer's external_id (unknown ones are rejected)."
    )
    type = serializers.CharField(help_text="Touchpoint type key.")
    occurred_at = serializers.DateTimeField(help_text="ISO 8601 with a timezone offset or Z.")
    idempotency_key = serializers.CharField(
        max_length=255, help_text="The sender's event id; required in bulk."
    )
    source = serializers.CharField(
        max_length=64, required=False, help_text="Defaults to the batch's source."
    )
    value = serializers.DecimalField(
        max_digits=14, decimal_places=2, required=False, allow_null=True
    )
    properties = serializers.DictField(required=False)


class BulkRequestSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=["atomic", "partial"], default="atomic")
    source = serializers.CharField(max_length=64, required=False, default="api")
    items = BulkItemSerializer(many=True, max_length=BULK_MAX_ITEMS)


class BulkItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in 'items', from 0.")
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class BulkResponseSerializer(serializers.Serializer):
    mode = serializers.CharField()
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField(
        help_text="Items whose (source, idempotency_key) was already stored or repeated "
        "earlier in the batch."
    )
    rejected = serializers.IntegerField()
    errors = BulkItemErrorSerializer(many=True)

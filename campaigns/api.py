"""REST API for plans: read plans, launch/pause/resume them, list enrollments, read results.

Thin views over ``campaigns.services`` and ``campaigns.selectors``; authentication,
throttling and keyset pagination are the shared ones of ``api/``.

| resource          | read         | write (launch, pause, resume) |
|-------------------|--------------|-------------------------------|
| plans, results    | every role   | Marketer, Admin               |
| enrollments       | every role   | —                             |
"""

from __future__ import annotations

import importlib
from typing import Any

import django_filters
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied as ApiPermissionDenied
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from api.filters import IdFilter, InstantFilter
from api.pagination import KeysetPagination, Ordering
from api.permissions import RolePermission
from api.views import ApiViewMixin
from campaigns import services
from campaigns.models import Enrollment, Plan, PlanStep
from campaigns.selectors import plan_arm_counts, plans_list
from customers.roles import Role
from segments.models import Segment


class PlanPermission(RolePermission):
    write_roles = frozenset({Role.MARKETER, Role.ADMIN})


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = PlanStep
        fields = ["id", "position", "delay_days", "delay_basis", "action", "config"]

    def to_representation(self, instance: PlanStep) -> dict:
        data = super().to_representation(instance)
        # Webhook secrets are write-only.
        if data["config"].get("secret"):
            data["config"] = {**data["config"], "secret": "********"}
        return data


class PlanSerializer(serializers.ModelSerializer):
    steps = StepSerializer(many=True, read_only=True)
    enrolled = serializers.IntegerField(read_only=True)

    class Meta:
        model = Plan
        fields = [
            "id",
            "name",
            "description",
            "status",
            "trigger_kind",
            "trigger_params",
            "segment",
            "start_at",
            "holdout_percent",
            "priority",
            "frequency_cap_per_week",
            "cooldown_days",
            "final_wait_days",
            "launched_at",
            "paused_at",
            "completed_at",
            "enrolled",
            "steps",
        ]
        read_only_fields = fields


class LaunchSerializer(serializers.Serializer):
    segment = serializers.PrimaryKeyRelatedField(
        queryset=Segment.objects.all(), required=False, allow_null=True
    )
    start_at = serializers.DateTimeField(required=False, allow_null=True)
    holdout_percent = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=90
    )


class EnrollmentSerializer(serializers.ModelSerializer):
    customer_external_id = serializers.CharField(
        source="customer.external_id", read_only=True, default=None
    )
    # Plain text: the stage enum is already named in the schema by the customers API.
    stage_at_enrollment = serializers.CharField(read_only=True)
    reengaged_after_position = serializers.IntegerField(
        source="reengaged_after_step.position", read_only=True, default=None
    )

    class Meta:
        model = Enrollment
        fields = [
            "id",
            "plan",
            "customer",
            "customer_external_id",
            "arm",
            "status",
            "segment",
            "enrolled_at",
            "stage_at_enrollment",
            "steps_done",
            "next_step_at",
            "ended_at",
            "reengaged_at",
            "reengaged_after_position",
            "days_since_last_action_at_first_step",
            "exit_reason",
        ]
        read_only_fields = fields


class EnrollmentFilter(django_filters.FilterSet):
    plan = IdFilter(field_name="plan_id")
    customer = IdFilter(field_name="customer_id")
    arm = django_filters.ChoiceFilter(choices=Enrollment.Arm.choices)
    status = django_filters.ChoiceFilter(choices=Enrollment.Status.choices)
    enrolled_after = InstantFilter(field_name="enrolled_at", lookup_expr="gte")
    enrolled_before = InstantFilter(field_name="enrolled_at", lookup_expr="lt")

    class Meta:
        model = Enrollment
        fields = ["plan", "customer", "arm", "status"]


def _service_call(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Map service errors onto API answers (403 for roles, 400 with the message otherwise)."""
    try:
        return function(*args, **kwargs)
    except PermissionDenied as exc:
        raise ApiPermissionDenied(str(exc)) from exc
    except DjangoValidationError as exc:
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        raise ValidationError(detail) from exc


def plan_results_data(plan: Plan) -> dict:
    """The results document: ``campaigns.results.plan_results`` when present, else counts."""
    try:
        results = importlib.import_module("campaigns.results")
    except ModuleNotFoundError:
        results = None
    if results is not None and hasattr(results, "plan_results"):
        data = results.plan_results(plan)
        if hasattr(data, "__dataclass_fields__"):
            import dataclasses

            data = dataclasses.asdict(data)
        return {"plan": plan.pk, "results": data}
    # Fallback for a checkout without campaigns.results (lift, CI, ROI): counts per arm.
    counts = plan_arm_counts(plan)
    return {
        "plan": plan.pk,
        "arms": {arm: {**vars(c), "reengaged_rate": c.reengaged_rate} for arm, c in counts.items()},
    }


@extend_schema_view(
    list=extend_schema(summary="List re-engagement plans"),
    retrieve=extend_schema(summary="One plan with its steps"),
)
class PlanViewSet(
    ApiViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    permission_classes = [PlanPermission]
    serializer_class = PlanSerializer
    pagination_class = KeysetPagination
    keyset_orderings = {"id": Ordering(None, descending=False)}
    keyset_default = "id"

    def get_queryset(self) -> QuerySet[Plan]:
        return plans_list().prefetch_related("steps")

    def _answer(self, plan: Plan) -> Response:
        return Response(PlanSerializer(self.get_queryset().get(pk=plan.pk)).data)

    @extend_schema(
        summary="Launch a draft plan", request=LaunchSerializer, responses=PlanSerializer
    )
    @action(detail=True, methods=["post"])
    def launch(self, request: Request, pk: str | None = None) -> Response:
        plan = self.get_object()
        form = LaunchSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _service_call(services.plan_launch, plan, request.user, **form.validated_data)
        return self._answer(plan)

    @extend_schema(summary="Pause a plan", request=None, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        plan = self.get_object()
        _service_call(services.plan_pause, plan, request.user)
        return self._answer(plan)

    @extend_schema(summary="Resume a paused plan", request=None, responses=PlanSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        plan = self.get_object()
        _service_call(services.plan_resume, plan, request.user)
        return self._answer(plan)

    @extend_schema(summary="A plan's results per arm", responses={200: dict})
    @action(detail=True, methods=["get"], pagination_class=None)
    def results(self, request: Request, pk: str | None = None) -> Response:
        return Response(plan_results_data(self.get_object()), status=status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(summary="List enrollments (filter by plan, customer, arm, status)"),
    retrieve=extend_schema(summary="One enrollment"),
)
class EnrollmentViewSet(
    ApiViewMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    permission_classes = [PlanPermission]
    serializer_class = EnrollmentSerializer
    pagination_class = KeysetPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = EnrollmentFilter
    keyset_orderings = {
        "-id": Ordering(None, descending=True),
        "id": Ordering(None, descending=False),
    }
    keyset_default = "-id"

    def get_queryset(self) -> QuerySet[Enrollment]:
        return Enrollment.objects.select_related("customer", "reengaged_after_step")

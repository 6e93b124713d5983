"""REST API views: thin callers of selectors, services and the bulk ingest.

Every view authenticates by API token or staff session (CSRF enforced by DRF for sessions),
is exempt from the site's login redirect (``login_not_required``: DRF answers 401/403
itself), and is throttled per token or user.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db.models import F, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView
from rest_framework import mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api import serializers as s
from api.authentication import ApiTokenAuthentication
from api.bulk import BulkRequestError, touchpoints_bulk_ingest
from api.filters import TouchpointFilter
from api.pagination import KeysetPagination, Ordering
from api.permissions import (
    AnyRolePermission,
    CustomerPermission,
    TouchpointPermission,
    TouchpointTypePermission,
)
from api.services import customer_create, customer_update, customer_upsert, touchpoint_record
from api.throttling import ApiScopedRateThrottle
from customers.engagement import engagement_explain, engine_config
from customers.filters import CustomerFilter
from customers.models import Customer, Engagement, Touchpoint, TouchpointType
from customers.selectors import SCORE_ORDER_FIELD, customers_with_state
from customers.services import touchpoint_type_save


class ApiViewMixin:
    """Authentication, throttling and the login-middleware exemption all API views share."""

    authentication_classes = [ApiTokenAuthentication, SessionAuthentication]
    throttle_classes = [ApiScopedRateThrottle]

    @classmethod
    def as_view(cls, *args: Any, **kwargs: Any):  # type: ignore[override]
        return login_not_required(super().as_view(*args, **kwargs))


class CustomerFilterBackend(DjangoFilterBackend):
    """The shared ``CustomerFilter``, evaluated at the request's ``now``."""

    def get_filterset_kwargs(self, request: Request, queryset: QuerySet, view: Any) -> dict:
        return {**super().get_filterset_kwargs(request, queryset, view), "now": view.now}


@extend_schema_view(
    list=extend_schema(summary="List customers (shared customer filters, cursor pages)"),
    retrieve=extend_schema(summary="One customer with engagement state and score explanation"),
    create=extend_schema(summary="Create a customer"),
    partial_update=extend_schema(summary="Change some fields of a customer"),
)
class CustomerViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [CustomerPermission]
    serializer_class = s.CustomerSerializer
    pagination_class = KeysetPagination
    filter_backends = [CustomerFilterBackend]
    filterset_class = CustomerFilter
    http_method_names = ["get", "post", "patch", "put", "head", "options"]
    keyset_orderings = {
        "id": Ordering(None, descending=False),
        "-id": Ordering(None, descending=True),
        "score": Ordering(SCORE_ORDER_FIELD, descending=False),
        "-score": Ordering(SCORE_ORDER_FIELD, descending=True),
    }
    keyset_default = "id"
    now: datetime

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        self.now = timezone.now()
        super().initial(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Customer]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request
            return Customer.objects.none()
        return customers_with_state(now=self.now, config=engine_config())

    def get_serializer_class(self) -> type:
        if self.action == "retrieve":
            return s.CustomerDetailSerializer
        if self.action == "by_external_id":
            return s.CustomerUpsertSerializer
        return s.CustomerSerializer

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "now": getattr(self, "now", None)}

    def _with_state(self, customer: Customer) -> Customer:
        return self.get_queryset().get(pk=customer.pk)

    def get_object(self) -> Customer:
        """By primary key, or by external id on the ``by-external-id`` routes (which DRF's
        ``OPTIONS`` answer also calls: it looks the object up to list the allowed actions)."""
        if "external_id" not in self.kwargs:
            return super().get_object()
        customer = get_object_or_404(self.get_queryset(), external_id=self.kwargs["external_id"])
        self.check_object_permissions(self.request, customer)
        return customer

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        customer = self.get_object()
        try:
            explanation = engagement_explain(customer, now=self.now)
        except Engagement.DoesNotExist:
            explanation = None
        context = {**self.get_serializer_context(), "explanation": explanation}
        return Response(s.CustomerDetailSerializer(customer, context=context).data)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = customer_create(data=serializer.validated_data)
        data = self.get_serializer(self._with_state(customer)).data
        return Response(data, status=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        customer = self.get_object()
        serializer = self.get_serializer(customer, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        customer_update(customer=customer, data=serializer.validated_data)
        return Response(self.get_serializer(self._with_state(customer)).data)

    @extend_schema(
        methods=["GET"],
        summary="One customer by external id",
        responses=s.CustomerSerializer,
    )
    @extend_schema(
        methods=["PUT"],
        summary="Create or update a customer by external id (upsert)",
        request=s.CustomerUpsertSerializer,
        responses={200: s.CustomerSerializer, 201: s.CustomerSerializer},
    )
    @action(
        detail=False,
        methods=["get", "put"],
        url_path=r"by-external-id/(?P<external_id>[^/]+)",
        filter_backends=[],
        pagination_class=None,
    )
    def by_external_id(self, request: Request, external_id: str) -> Response:
        if request.method == "GET":
            customer = self.get_object()
            return Response(
                s.CustomerSerializer(customer, context=self.get_serializer_context()).data
            )
        if len(external_id) > 255:
            raise ValidationError({"external_id": ["external_id is longer than 255 characters."]})
        existing = Customer.objects.filter(external_id=external_id).first()
        serializer = s.CustomerUpsertSerializer(
            existing, data=request.data, partial=True, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        customer, created = customer_upsert(external_id=external_id, data=serializer.validated_data)
        data = s.CustomerSerializer(
            self._with_state(customer), context=self.get_serializer_context()
        ).data
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(summary="List touchpoints (filters, cursor pages)"),
    retrieve=extend_schema(summary="One touchpoint"),
    create=extend_schema(
        summary="Record one touchpoint",
        request=s.TouchpointCreateSerializer,
        responses={201: s.TouchpointSerializer, 200: s.TouchpointSerializer},
    ),
)
class TouchpointViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    permission_classes = [TouchpointPermission]
    serializer_class = s.TouchpointSerializer
    pagination_class = KeysetPagination
    filter_backends = [DjangoFilterBackend]
    filterset_class = TouchpointFilter
    keyset_orderings = {
        "-id": Ordering(None, descending=True),
        "id": Ordering(None, descending=False),
        "occurred_at": Ordering("occurred_at", descending=False),
        "-occurred_at": Ordering("occurred_at", descending=True),
    }
    keyset_default = "-id"

    def get_queryset(self) -> QuerySet[Touchpoint]:
        return Touchpoint.objects.select_related("type").annotate(
            customer_external_id=F("customer__external_id")
        )

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.TouchpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        touchpoint, created = touchpoint_record(**serializer.validated_data)
        data = s.TouchpointSerializer(self.get_queryset().get(pk=touchpoint.pk)).data
        return Response(data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@extend_schema_view(
    list=extend_schema(summary="List touchpoint types"),
    retrieve=extend_schema(summary="One touchpoint type"),
    create=extend_schema(summary="Add a touchpoint type (admins)"),
    partial_update=extend_schema(
        summary="Change a touchpoint type (admins); a weight change starts a rescore"
    ),
    update=extend_schema(summary="Replace a touchpoint type (admins)"),
)
class TouchpointTypeViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Types are never deleted through the API (touchpoints refer to them): deactivate."""

    permission_classes = [TouchpointTypePermission]
    serializer_class = s.TouchpointTypeSerializer
    queryset = TouchpointType.objects.all()
    lookup_field = "key"
    pagination_class = None

    def perform_create(self, serializer: s.TouchpointTypeSerializer) -> None:
        touchpoint_type = TouchpointType(**serializer.validated_data)
        # A new type has no touchpoints yet: nothing to rescore.
        touchpoint_type_save(touchpoint_type=touchpoint_type, changed=(), user=self.request.user)
        serializer.instance = touchpoint_type

    def perform_update(self, serializer: s.TouchpointTypeSerializer) -> None:
        touchpoint_type = serializer.instance
        changed = [
            name
            for name, value in serializer.validated_data.items()
            if getattr(touchpoint_type, name) != value
        ]
        for name, value in serializer.validated_data.items():
            setattr(touchpoint_type, name, value)
        touchpoint_type_save(
            touchpoint_type=touchpoint_type, changed=changed, user=self.request.user
        )


class BulkTouchpointsView(ApiViewMixin, APIView):
    """Up to 10,000 touchpoints per call; see ``api.bulk`` for validation and semantics."""

    permission_classes = [TouchpointPermission]
    throttle_scope = "api_bulk"

    @extend_schema(
        summary="Record up to 10,000 touchpoints (atomic or partial, idempotent)",
        request=s.BulkRequestSerializer,
        responses={
            200: s.BulkResponseSerializer,
            400: OpenApiResponse(
                s.BulkResponseSerializer,
                description="Atomic mode with invalid items (nothing stored), or a "
                "malformed request.",
            ),
            413: OpenApiResponse(description="Body larger than API_BULK_MAX_BODY_BYTES."),
        },
    )
    def post(self, request: Request) -> Response:
        length = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.API_BULK_MAX_BODY_BYTES
        if length.isdigit() and int(length) > limit:
            return Response(
                {
                    "detail": f"Request body too large: {int(length):,} bytes; the limit is "
                    f"{limit:,}. Split the batch."
                },
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        try:
            result = touchpoints_bulk_ingest(payload=request.data)
        except BulkRequestError as error:
            raise ValidationError(error.errors) from None
        body = result.as_dict()
        if not result.written:
            body["detail"] = (
                f"Nothing was stored: {result.rejected:,} of {result.received:,} items are "
                "invalid (mode 'atomic'). Fix them, or send mode 'partial' to keep the good ones."
            )
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_200_OK)


class SchemaView(ApiViewMixin, SpectacularAPIView):
    """The OpenAPI 3 document, for any authenticated staff member or token."""

    permission_classes = [IsAuthenticated, AnyRolePermission]

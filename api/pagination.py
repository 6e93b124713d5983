"""Keyset (cursor) pagination: every page is one indexed range scan, never an OFFSET.

A cursor is the sort key of the last row served, ``(value, id)`` — ``id`` breaks ties, so
rows with equal values (many customers share a score of 0) are neither repeated nor skipped
across pages, and inserting rows does not shift later pages. Cursors are opaque base64 JSON;
a tampered or foreign cursor answers 400.
"""

from __future__ import annotations

import base64
import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


@dataclass(frozen=True)
class Ordering:
    """One allowed sort: ``field`` (None = id only), direction, and how values look in JSON."""

    field: str | None
    descending: bool


class KeysetPagination(BasePagination):
    """Pages of ``page_size`` rows ordered by one of ``view.keyset_orderings`` then id."""

    cursor_param = "cursor"
    page_size_param = "page_size"
    ordering_param = "ordering"
    page_size = 100
    max_page_size = 1000

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Any]:
        orderings: dict[str, Ordering] = view.keyset_orderings
        name = request.query_params.get(self.ordering_param) or view.keyset_default
        if name not in orderings:
            raise ValidationError(
                {self.ordering_param: [f"Choose one of: {', '.join(orderings)}."]}
            )
        ordering = orderings[name]
        size = self._page_size(request)
        cursor = self._decode(request.query_params.get(self.cursor_param), name)
        sign = "-" if ordering.descending else ""
        if ordering.field:
            queryset = queryset.filter(**{f"{ordering.field}__isnull": False})
            order_by = [f"{sign}{ordering.field}", f"{sign}id"]
        else:
            order_by = [f"{sign}id"]
        if cursor is not None:
            queryset = queryset.filter(self._after(ordering, cursor))
        rows = list(queryset.order_by(*order_by)[: size + 1])
        self.request = request
        self.has_next = len(rows) > size
        self.page = rows[:size]
        self.next_cursor = None
        if self.has_next:
            last = self.page[-1]
            value = self._value(last, ordering.field) if ordering.field else None
            self.next_cursor = self._encode(name, value, last.pk)
        return self.page

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {self.page_size_param: [f"Give a whole number from 1 to {self.max_page_size}."]}
            )
        return size

    @staticmethod
    def _value(row: Any, field: str) -> Any:
        value: Any = row
        for part in field.split("__"):
            value = getattr(value, part)
        return value

    @staticmethod
    def _after(ordering: Ordering, cursor: dict) -> Q:
        op = "lt" if ordering.descending else "gt"
        if not ordering.field:
            return Q(**{f"id__{op}": cursor["id"]})
        return Q(**{f"{ordering.field}__{op}": cursor["v"]}) | Q(
            **{ordering.field: cursor["v"], f"id__{op}": cursor["id"]}
        )

    @staticmethod
    def _encode(name: str, value: Any, pk: int) -> str:
        if isinstance(value, datetime):
            value = value.isoformat()
        raw = json.dumps({"o": name, "v": value, "id": pk}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _decode(self, raw: str | None, name: str) -> dict | None:
        if not raw:
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
            valid = (
                isinstance(data, dict)
                and data.get("o") == name
                and isinstance(data.get("id"), int)
                and (data.get("v") is None or isinstance(data["v"], int | float | str))
            )
            if valid and isinstance(data["v"], str):
                data["v"] = datetime.fromisoformat(data["v"])
                valid = data["v"].tzinfo is not None
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise ValidationError(
                {
                    self.cursor_param: [
                        "Invalid cursor: use the 'next' link of the previous page unchanged, "
                        "with the same ordering."
                    ]
                }
            )
        return data

    def get_paginated_response(self, data: list[Any]) -> Response:
        return Response(OrderedDict([("next", self._next_link()), ("results", data)]))

    def _next_link(self) -> str | None:
        if not self.next_cursor:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_param, self.next_cursor)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        return [
            {
                "name": self.cursor_param,
                "in": "query",
                "required": False,
                "description": "Opaque cursor from the previous page's 'next' link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_param,
                "in": "query",
                "required": False,
                "description": f"Rows per page, 1–{self.max_page_size} (default {self.page_size}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
            {
                "name": self.ordering_param,
                "in": "query",
                "required": False,
                "description": "Sort order; ties are broken by id.",
                "schema": {"type": "string", "enum": list(view.keyset_orderings)},
            },
        ]

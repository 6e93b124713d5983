"""Scoped rate limits per token (or per staff user), rates from settings / environment."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle

from api.models import ApiToken


class ApiScopedRateThrottle(ScopedRateThrottle):
    """Like DRF's scoped throttle, but a token is its own identity (tokens have no user id)."""

    def get_cache_key(self, request: Request, view: object) -> str | None:
        if isinstance(request.auth, ApiToken):
            ident = f"token-{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request: Request, view: object) -> bool:
        # Reads and writes share a view; pick the scope by method unless the view fixes it.
        scope = getattr(view, "throttle_scope", None)
        if scope is None:
            view.throttle_scope = "api_read" if request.method in ("GET", "HEAD") else "api_write"
            try:
                return super().allow_request(request, view)
            finally:
                view.throttle_scope = None
        return super().allow_request(request, view)

"""Staff roles (Django groups) and the checks views use.

Three roles, created by migration with their model permissions:

- Marketer: reviews segments, builds and launches plans, reads results.
- Customer success: works the renewal-risk list, owns accounts, writes notes.
- Admin: everything, including touchpoint weights, engine settings and jobs.

Superusers count as Admin. A view names the roles that may use it with ``role_required``;
anyone else gets a 403 page.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


class Role(StrEnum):
    MARKETER = "Marketer"
    CUSTOMER_SUCCESS = "Customer success"
    ADMIN = "Admin"


ALL_ROLES = frozenset(Role)


def user_roles(user: Any) -> frozenset[Role]:
    """The roles a user holds; cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_lifecycle_roles", None)
    if cached is not None:
        return cached
    if user.is_superuser:
        roles = ALL_ROLES
    else:
        names = set(user.groups.values_list("name", flat=True))
        roles = frozenset(role for role in Role if role.value in names)
        if Role.ADMIN in roles:
            roles = ALL_ROLES
    user._lifecycle_roles = roles
    return roles


def has_role(user: Any, *roles: Role) -> bool:
    """True when the user holds any of ``roles`` (admins hold them all)."""
    return bool(user_roles(user) & set(roles))


def role_required(*roles: Role) -> Callable:
    """View decorator: 403 unless the logged-in user holds one of ``roles``.

    Login itself is enforced globally by ``LoginRequiredMiddleware``.
    """

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not has_role(request.user, *roles):
                raise PermissionDenied("Your role does not give access to this page.")
            return view(request, *args, **kwargs)

        wrapped.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return wrapped

    return decorator


def roles_context(request: HttpRequest) -> dict[str, Any]:
    """Template context: which parts of the navigation this user may see."""
    roles = user_roles(getattr(request, "user", None))
    return {
        "can": {
            "marketing": bool(roles & {Role.MARKETER, Role.ADMIN}),
            "customer_success": bool(roles & {Role.CUSTOMER_SUCCESS, Role.ADMIN}),
            "customers": bool(roles),
            "admin": Role.ADMIN in roles,
        },
        "user_role_names": sorted(role.value for role in roles),
    }

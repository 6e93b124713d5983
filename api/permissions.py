"""Which role may do what through the API (documented in README, "REST API").

| resource            | read                 | write                            |
|---------------------|----------------------|----------------------------------|
| customers           | every role           | Customer success, Admin          |
| touchpoints (+bulk) | every role           | Marketer, Customer success, Admin|
| touchpoint types    | every role           | Admin                            |

Marketers record what campaigns and products observe (touchpoints) but do not edit account
records, which customer success owns; weights change every score, so only admins set them.
A token acts as the one role it was issued with. No role at all: 403.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from customers.roles import ALL_ROLES, Role, has_role


class RolePermission(BasePermission):
    """Grants reads to ``read_roles`` and writes to ``write_roles`` (set on subclasses)."""

    read_roles: frozenset[Role] = ALL_ROLES
    write_roles: frozenset[Role] = frozenset({Role.ADMIN})
    message = "Your role does not give access to this."

    def has_permission(self, request: Request, view: object) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        roles = self.read_roles if request.method in SAFE_METHODS else self.write_roles
        if not has_role(request.user, *roles):
            self.message = (
                "Your role does not allow changes here."
                if has_role(request.user, *ALL_ROLES)
                else "Your account has no Lifecycle role; ask an admin to give you one."
            )
            return False
        return True


class CustomerPermission(RolePermission):
    write_roles = frozenset({Role.CUSTOMER_SUCCESS, Role.ADMIN})


class TouchpointPermission(RolePermission):
    write_roles = ALL_ROLES


class TouchpointTypePermission(RolePermission):
    write_roles = frozenset({Role.ADMIN})


class AnyRolePermission(RolePermission):
    write_roles = ALL_ROLES

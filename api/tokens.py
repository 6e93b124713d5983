"""Issuing, revoking and checking API tokens.

Secrets are 256 random bits (``secrets.token_urlsafe(32)``) behind a recognisable ``lc_``
prefix. Only their SHA-256 is stored: a fast hash suffices for high-entropy secrets (no
dictionary to guess from), and the lookup by digest plus a constant-time compare of the
digest leaks nothing useful through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from api.models import ApiToken
from customers.roles import ALL_ROLES, Role

TOKEN_PREFIX = "lc_"
# Writing last_used_at on every request would cost a row update per call; a minute is plenty.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown to the admin once, never stored


def token_issue(*, name: str, role: Role | str, created_by: Any) -> IssuedToken:
    """Create a token for integration ``name`` acting as ``role``; returns the secret once."""
    role = Role(role)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        name=name.strip(),
        role=role.value,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        secret_hash=secret_digest(secret),
        created_by=created_by,
    )
    return IssuedToken(token=token, secret=secret)


def token_revoke(*, token: ApiToken, revoked_by: Any) -> bool:
    """Revoke ``token`` now (idempotent); returns False when it was already revoked."""
    with transaction.atomic():
        updated = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=revoked_by
        )
    token.refresh_from_db()
    return bool(updated)


def token_check(secret: str) -> ApiToken | None:
    """The token whose secret this is (revoked or not), or None."""
    digest = secret_digest(secret)
    token = ApiToken.objects.filter(secret_hash=digest).first()
    if token is None or not hmac.compare_digest(token.secret_hash, digest):
        return None
    return token


def token_touch(token: ApiToken) -> None:
    """Record use, at most once per ``LAST_USED_RESOLUTION``."""
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


class TokenUser:
    """``request.user`` for a token: authenticated, acting only with the token's role.

    Not a database user; ``customers.roles.user_roles`` reads the pre-filled role cache, so
    ``has_role`` works the same for people and tokens.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None
    id = None

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.username = f"token:{token.name}"
        role = Role(token.role)
        self._lifecycle_roles = ALL_ROLES if role == Role.ADMIN else frozenset({role})

    def __str__(self) -> str:
        return self.username

    def get_username(self) -> str:
        return self.username

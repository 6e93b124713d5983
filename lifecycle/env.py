"""Tiny typed readers for settings that come from the environment.

Each helper returns a typed value or raises ``ImproperlyConfigured`` with the variable's
name, so a typo in a deployment fails at start-up rather than as a puzzling behaviour later.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise ImproperlyConfigured(f"Set the {name} environment variable.")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}.") from None


def env_int_renamed(name: str, old_names: tuple[str, ...], default: int) -> int:
    """``env_int(name)``; while ``name`` is unset, the first of its deprecated ``old_names``
    that is set still counts (with a warning at start-up), so existing deployments keep
    their value after a rename."""
    if os.environ.get(name, "").strip():
        return env_int(name, default)
    for old in old_names:
        if os.environ.get(old, "").strip():
            warnings.warn(
                f"{old} is deprecated; set {name} instead.", DeprecationWarning, stacklevel=2
            )
            return env_int(old, default)
    return default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def database_from_url(url: str, *, base_dir: Path) -> dict:
    """DATABASES['default'] from ``postgres://user:pw@host:port/name?opt=v`` or ``sqlite:///path``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "pgsql"}:
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    if scheme == "sqlite":
        # sqlite:///relative.db is relative to the project, sqlite:////abs.db is absolute.
        raw_path = unquote(parts.path)
        path = Path(raw_path[1:] if raw_path.startswith("/") else raw_path)
        if not path.is_absolute():
            path = base_dir / path
        return sqlite_database(path)
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {scheme!r} is not supported; use postgres:// or sqlite:///."
    )


def sqlite_database(path: Path) -> dict:
    path.parent.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/ yet
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # Web, worker and beat share one file: WAL lets readers run beside a writer, and
        # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
        "TEST": {"NAME": str(path.with_name(path.stem + "-test.sqlite3"))},
    }

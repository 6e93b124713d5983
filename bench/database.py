"""Each benchmark's own PostgreSQL database, next to the one ``DATABASE_URL`` names."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit


def bench_database_url(name: str, benchmark: str) -> str:
    """The URL of database ``name`` on the server of ``DATABASE_URL`` (or the local one);
    exits with a message when that server is not PostgreSQL."""
    base = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/postgres"
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"The {benchmark} benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database(url: str) -> None:
    """Drop (disconnecting its sessions) and create the database of ``url``, empty."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def use_bench_database(name: str, benchmark: str, *, reuse: bool) -> str:
    """Point Django at the benchmark's own database (recreated empty unless ``reuse``) and set
    Django up; returns its URL. Call before importing models."""
    url = bench_database_url(name, benchmark)
    if not reuse:
        recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifecycle.settings")
    import django

    django.setup()
    return url


def engine_rows_insert(cursor) -> None:
    """Every customer's default engine rows (stage new, no activity), set-based: what
    ``customers.engagement.engine_rows_ensure`` gives a customer the ORM creates. For
    generators that insert customers in bulk SQL into an empty database."""
    cursor.execute(
        "INSERT INTO customers_engagement (customer_id, stage, stage_rule) "
        "SELECT id, 'new', '' FROM customers_customer"
    )
    cursor.execute(
        "INSERT INTO customers_scorestate (customer_id, decay_sum, frequency) "
        "SELECT id, 0, 0 FROM customers_customer"
    )

"""Bulk touchpoint API throughput: one client, 1,000-event batches, full HTTP stack.

``measure(ctx)`` is the piece the ingest harness (``bench/bench_ingest.py``) calls with a
running gunicorn (``ctx.base_url``) on a migrated PostgreSQL database with customers; it
issues its own API token in that database, warms every worker up with a few batches, then
sends ``ctx.touchpoints`` events (at most 200,000) from one keep-alive connection and returns
``{"rows_per_s": ...}``. Bodies are JSON-encoded before
the clock starts: the figure is the server's throughput, not the client's ``json.dumps``.

Standalone (``python -m bench.ingest_bulk_api``): recreates its own database
``lifecycle_api_bench``, migrates, generates customers in SQL, measures raw ``COPY`` of N
touchpoints into the touchpoint table as the ceiling, starts gunicorn, runs ``measure`` and
prints rows/s and the fraction of COPY. Target: >= 10,000 touchpoints/s.

Usage: ``python -m bench.ingest_bulk_api [--touchpoints N] [--customers N] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from bench.database import bench_database_url, engine_rows_insert, recreate_database

BATCH = 1_000
MAX_TOUCHPOINTS = 200_000  # cap on the events sent (the harness passes its N of 1M)
WARMUP_BATCHES = 8
BENCH_DB = "lifecycle_api_bench"


def _get(ctx: Any, name: str, default: Any = None) -> Any:
    if isinstance(ctx, dict):
        return ctx.get(name, default)
    return getattr(ctx, name, default)


def _bodies(external_ids: list[str], type_keys: list[str], n: int, run: str) -> list[bytes]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    bodies = []
    for start in range(0, n, BATCH):
        items = [
            {
                "customer_external_id": rng.choice(external_ids),
                "type": rng.choice(type_keys),
                "occurred_at": (now - timedelta(seconds=rng.randrange(365 * 86400))).isoformat(),
                "idempotency_key": f"{run}-{i}",
                "properties": {"n": i},
            }
            for i in range(start, min(start + BATCH, n))
        ]
        bodies.append(json.dumps({"source": "bench-api", "items": items}).encode())
    return bodies


def measure(ctx: Any) -> dict:
    """Send ``ctx.touchpoints`` events in 1,000-event batches to ``ctx.base_url``; rows/s."""
    from api.tokens import token_issue
    from customers.models import TouchpointType
    from customers.roles import Role

    active = set(TouchpointType.objects.filter(is_active=True).values_list("key", flat=True))
    type_keys = [k for k in _get(ctx, "type_keys") or sorted(active) if k in active]
    external_ids = list(_get(ctx, "customer_external_ids"))
    # The harness's N is sized for COPY and CSV (1M); at the target rate 200k events are
    # 20 s of steady state, plenty for a stable figure.
    n = min(int(_get(ctx, "touchpoints", 100_000)), MAX_TOUCHPOINTS)
    secret = token_issue(name="bench bulk API", role=Role.MARKETER, created_by=None).secret
    run = f"bench-{secrets.token_hex(4)}"
    warm = _bodies(external_ids, type_keys, WARMUP_BATCHES * BATCH, run=f"{run}-warm")
    bodies = _bodies(external_ids, type_keys, n, run=run)
    url = urlsplit(_get(ctx, "base_url"))
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    path = url.path.rstrip("/") + "/api/v1/touchpoints/bulk/"

    def send(batch: list[bytes]) -> int:
        created = 0
        for body in batch:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise RuntimeError(f"bulk API answered {response.status}: {answer[:500]!r}")
            created += json.loads(answer)["created"]
        return created

    # Warm-up: every gunicorn worker imports its views, fills its caches and opens its
    # database connection before the clock starts (a few batches per worker suffice).
    send(warm)
    started = time.perf_counter()
    created = send(bodies)
    seconds = time.perf_counter() - started
    conn.close()
    if created != n:
        raise RuntimeError(f"expected {n} touchpoints created, the API reports {created}")
    result = {"rows_per_s": n / seconds, "rows": n, "seconds": seconds, "batches": len(bodies)}
    copy_rate = _get(ctx, "copy_rows_per_s")
    if copy_rate:
        result["fraction_of_copy"] = result["rows_per_s"] / copy_rate
    return result


# --- standalone ------------------------------------------------------------------------------


def _generate_customers(n: int) -> list[str]:
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            """
            INSERT INTO customers_customer (id, external_id, email, name, company, plan, region,
                spend_tier, lifetime_revenue, signup_date, email_opt_out, is_identified, traits,
                created_at, updated_at)
            SELECT g, 'bench-' || g, 'c' || g || '@bench.example', 'Customer ' || g, '', 'Pro',
                'Europe', 'mid', 0, current_date - 400, false, true, '{}', now(), now()
            FROM generate_series(1, %s) g
            """,
            [n],
        )
        engine_rows_insert(c)
        c.execute("SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [n])
        c.execute("ANALYZE")
    return [f"bench-{i}" for i in range(1, n + 1)]


def measure_copy(n: int, customers: int) -> float:
    """Raw COPY of ``n`` touchpoints (with idempotency keys) into the table; rows/s. The rows
    are removed afterwards so the API run starts from the same table."""
    from django.db import connection, transaction

    from customers.models import TouchpointType

    type_ids = list(TouchpointType.objects.values_list("id", flat=True))
    rng = random.Random(3)
    now = datetime.now(UTC)
    # Pre-rendered COPY text: the ceiling is the server's, not Python's per-row adaptation.
    received = now.isoformat()
    text = "".join(
        f"{rng.randrange(1, customers + 1)}\t{rng.choice(type_ids)}\t"
        f"{(now - timedelta(seconds=rng.randrange(365 * 86400))).isoformat()}\t"
        f"bench-copy\tcopy-{i}\t{{}}\t{received}\n"
        for i in range(n)
    ).encode()
    started = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as c,
        c.cursor.copy(
            "COPY customers_touchpoint (customer_id, type_id, occurred_at, source, "
            "idempotency_key, properties, received_at) FROM STDIN"
        ) as copy,
    ):
        copy.write(text)
    seconds = time.perf_counter() - started
    with connection.cursor() as c:
        c.execute("TRUNCATE customers_touchpoint CASCADE")
        c.execute("VACUUM ANALYZE customers_touchpoint")
    return n / seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(
    url: str, workers: int, extra: tuple[str, ...] = ("--log-level", "warning")
) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "LIFECYCLE_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
    }
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    process = subprocess.Popen(
        [gunicorn, "lifecycle.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}", *extra],
        env=env,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None:
                raise RuntimeError("gunicorn exited at start-up") from None
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("gunicorn did not start within 30 s")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_bulk_api")
    parser.add_argument("--touchpoints", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    url = bench_database_url(BENCH_DB, "bulk API")
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifecycle.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    external_ids = _generate_customers(args.customers)
    print(
        f"Bulk API benchmark: {args.touchpoints:,} touchpoints over {args.customers:,} customers "
        f"(PostgreSQL, gunicorn x{args.workers}, {os.cpu_count()} cores)",
        flush=True,
    )
    copy_rate = measure_copy(args.touchpoints, args.customers)
    print(f"  raw COPY into the touchpoint table      {copy_rate:12,.0f} rows/s", flush=True)
    process, base_url = _start_gunicorn(url, args.workers)
    try:
        result = measure(
            {
                "base_url": base_url,
                "database_url": url,
                "customer_external_ids": external_ids,
                "type_keys": None,
                "copy_rows_per_s": copy_rate,
                "touchpoints": args.touchpoints,
            }
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    print(
        f"  bulk API, 1 client, {BATCH:,}-event batches {result['rows_per_s']:12,.0f} rows/s"
        f"   = {result['fraction_of_copy']:.2f} of COPY   (target >= 10,000/s)",
        flush=True,
    )
    return result


if __name__ == "__main__":
    main()

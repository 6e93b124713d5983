"""Ingest benchmark on PostgreSQL: raw COPY (the ceiling), then every ingest path as rows/s and
as a fraction of that COPY, measured in one run on one database.

1. ``lifecycle_ingest_bench`` (on the server of DATABASE_URL, or 127.0.0.1) is recreated,
   migrated, and filled with customers (set-based SQL).
2. Ceiling: ``COPY`` of N touchpoints (with idempotency keys, so every index the ingest paths
   maintain is maintained here too) into the touchpoint table; data prepared beforehand, only
   the COPY is timed.
3. ``/v1/batch`` (the Segment-compatible API) through the full HTTP stack: gunicorn started as
   a subprocess on the bench database, one client sending gzip batches just under the 500 KB
   limit over one kept-alive connection; every answer is checked and the stored rows counted.
4. Pluggable measures: for each of ``bench.ingest_bulk_api`` and ``bench.ingest_csv`` that
   exists, ``measure(ctx: IngestContext) -> dict`` (at least ``rows_per_s``, optionally
   ``peak_rss_mib``) runs against the same gunicorn and database: the bulk API (one client,
   1,000-event batches, warmed up, at most 200,000 events) and the CSV import of N rows
   (plus a quarter-size file, for its peak memory at two sizes).
5. Each figure is printed as rows/s and as a multiple of the raw COPY, with its target
   (bulk API >= 10,000/s, CSV import >= 100,000/s) and the load average.

The touchpoint and queue tables are emptied before each measure, so each starts alike.

Usage: ``python -m bench ingest [--touchpoints N] [--batch-touchpoints M] [--customers C]
[--workers W]``.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import importlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from bench.database import bench_database_url, engine_rows_insert, recreate_database

DATABASE = "lifecycle_ingest_bench"
PLUGINS = ("bench.ingest_bulk_api", "bench.ingest_csv")
ROOT = Path(__file__).resolve().parent.parent
BATCH_BODY_BYTES = 480 * 1024  # uncompressed, under the spec's 500 KB with room to spare


@dataclass(frozen=True)
class IngestContext:
    """What a pluggable ingest measure gets (``measure(ctx) -> dict``).

    ``base_url``: the running gunicorn (e.g. ``http://127.0.0.1:8765``), serving the bench
    database. ``database_url``: that database (Django is set up on it in this process too).
    ``touchpoints``: the run's N (``--touchpoints``, default 1,000,000); a measure may use a
    smaller size of its own when N would take too long. ``customer_external_ids``: existing
    customers to reference. ``type_keys``: touchpoint type keys that exist.
    ``copy_rows_per_s``: the raw COPY ceiling measured in this run.
    """

    base_url: str
    database_url: str
    touchpoints: int
    customer_external_ids: Sequence[str]
    type_keys: Sequence[str]
    copy_rows_per_s: float


def generate_customers(count: int) -> list[str]:
    """``count`` customers with engine rows, set-based; returns their external ids."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            """
            INSERT INTO customers_customer (external_id, email, name, company, plan, region,
                spend_tier, lifetime_revenue, signup_date, email_opt_out, is_identified, traits,
                created_at, updated_at)
            SELECT 'bench-' || g, 'c' || g || '@bench.example', 'Customer ' || g, '',
                (ARRAY['Free','Starter','Growth','Pro'])[1 + g %% 4],
                (ARRAY['North America','Europe','APAC','LATAM'])[1 + (g / 7) %% 4],
                'low', 0, current_date - (60 + g %% 480), false, true, '{}', now(), now()
            FROM generate_series(1, %s) g
            """,
            [count],
        )
        engine_rows_insert(c)
        c.execute("VACUUM ANALYZE customers_customer")
    return [f"bench-{i}" for i in range(1, count + 1)]


def _touchpoint_tables_empty() -> None:
    from django.db import connection

    with connection.cursor() as c:
        # CASCADE: other tables (customer-success notes) reference touchpoints.
        c.execute("TRUNCATE customers_touchpoint, customers_pendingtouchpoint CASCADE")


def _copy_text(n: int, customer_ids: list[int], type_ids: list[int]) -> list[bytes]:
    """N touchpoint rows as COPY text, in 100,000-row chunks (prepared before timing)."""
    rng = random.Random(4)
    now = datetime.now(UTC)
    chunks: list[bytes] = []
    for start in range(0, n, 100_000):
        lines = []
        for i in range(start, min(n, start + 100_000)):
            when = (now - timedelta(seconds=rng.randrange(86_400 * 90))).isoformat()
            lines.append(
                f"{rng.choice(customer_ids)}\t{rng.choice(type_ids)}\t{when}\tbench-copy\t"
                f"copy-{i}\t{{}}\t{now.isoformat()}\n"
            )
        chunks.append("".join(lines).encode())
    return chunks


def measure_copy(n: int) -> float:
    """Rows/s of ``COPY`` into the touchpoint table (the ceiling)."""
    from django.db import connection

    from customers.models import Customer, TouchpointType

    customer_ids = list(Customer.objects.values_list("id", flat=True))
    type_ids = list(TouchpointType.objects.values_list("id", flat=True))
    chunks = _copy_text(n, customer_ids, type_ids)
    connection.ensure_connection()
    raw = connection.connection  # psycopg 3
    started = time.perf_counter()
    with (
        raw.cursor() as cursor,
        cursor.copy(
            "COPY customers_touchpoint (customer_id, type_id, occurred_at, source, "
            "idempotency_key, properties, received_at) FROM STDIN"
        ) as copy,
    ):
        for chunk in chunks:
            copy.write(chunk)
    raw.commit()
    seconds = time.perf_counter() - started
    return n / seconds


# --- gunicorn ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_control_socket() -> list[str]:
    """Newer gunicorn opens a control socket at one fixed path per user; two benchmarks
    running at once would share it, so turn it off where the option exists."""
    help_text = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return ["--no-control-socket"] if "--no-control-socket" in help_text else []


def gunicorn_start(database_url: str, workers: int) -> tuple[subprocess.Popen, str, Path]:
    """gunicorn serving the site on the bench database; returns (process, base URL, log)."""
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1])
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DEBUG": "false",  # DEBUG keeps every SQL statement in memory
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "lifecycle.wsgi:application",
            f"--workers={workers}",
            f"--bind=127.0.0.1:{port}",
            "--timeout=120",
            *_no_control_socket(),
        ],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited; see {log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/login/")
            if conn.getresponse().status == 200:
                return process, f"http://127.0.0.1:{port}", log
        except OSError:
            pass
        time.sleep(0.3)
    process.terminate()
    sys.exit(f"gunicorn did not answer within 60 s; see {log}")


def gunicorn_stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


# --- /v1/batch -----------------------------------------------------------------------------


def _batch_bodies(
    n: int, external_ids: Sequence[str], event_names: Sequence[str], prefix: str = "bench"
) -> list[bytes]:
    """gzip bodies of ``track`` batches, each just under ``BATCH_BODY_BYTES`` uncompressed."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    bodies: list[bytes] = []
    batch: list[str] = []
    size = 0
    for i in range(n):
        message = json.dumps(
            {
                "type": "track",
                "userId": rng.choice(external_ids),
                "event": rng.choice(event_names),
                "messageId": f"{prefix}-{i}",
                "timestamp": (now - timedelta(seconds=rng.randrange(86_400 * 90))).isoformat(),
                "properties": {"plan": "Growth", "path": f"/feature/{i % 50}"},
                "context": {"library": {"name": "bench", "version": "1"}},
            },
            separators=(",", ":"),
        )
        if batch and size + len(message) + 64 > BATCH_BODY_BYTES:
            bodies.append(_batch_body(batch, now))
            batch, size = [], 0
        batch.append(message)
        size += len(message) + 1
    if batch:
        bodies.append(_batch_body(batch, now))
    return bodies


def _batch_body(messages: list[str], sent_at: datetime) -> bytes:
    text = '{"batch":[' + ",".join(messages) + f'],"sentAt":"{sent_at.isoformat()}"}}'
    return gzip.compress(text.encode(), compresslevel=6)


def measure_v1_batch(base_url: str, n: int, external_ids: Sequence[str]) -> dict:
    """Rows/s of ``/v1/batch`` with one client; checks every answer and the stored count."""
    import base64

    from customers.models import PendingTouchpoint, Touchpoint, TouchpointType
    from tracking.models import EventMapping
    from tracking.services import source_create

    _, key = source_create(name=f"bench {time.time_ns()}")
    event_names = []
    for t in TouchpointType.objects.filter(is_active=True):
        name = f"Bench {t.label}"
        EventMapping.objects.get_or_create(event_name=name, defaults={"type": t})
        event_names.append(name)
    bodies = _batch_bodies(n, external_ids, event_names)
    host = urlsplit(base_url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
    headers = {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode(),
    }
    created = 0
    started = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/v1/batch", body=body, headers=headers)
        response = conn.getresponse()
        answer = json.loads(response.read())
        if response.status != 200 or answer["rejected"]:
            sys.exit(f"/v1/batch answered {response.status}: {str(answer)[:500]}")
        created += answer["touchpoints_created"]
    seconds = time.perf_counter() - started
    conn.close()
    stored = Touchpoint.objects.count()
    if created != n or stored != n or PendingTouchpoint.objects.count() != n:
        sys.exit(f"/v1/batch: sent {n:,}, answered created {created:,}, stored {stored:,}")
    return {
        "rows_per_s": n / seconds,
        "seconds": seconds,
        "batches": len(bodies),
        "per_batch": n / len(bodies),
    }


# --- the run ------------------------------------------------------------------------------


LABELS = {
    "bench.ingest_bulk_api": "bulk API (1 client, 1,000-event batches)",
    "bench.ingest_csv": "CSV import of {rows:,} touchpoints",
}
TARGETS = {"bench.ingest_bulk_api": 10_000, "bench.ingest_csv": 100_000}


def _report(label: str, result: dict, copy_rate: float, target: float | None = None) -> None:
    rate = result["rows_per_s"]
    line = f"  {label:<44} {rate:>11,.0f} rows/s   {rate / copy_rate:5.2f} x COPY"
    if target:
        line += f"   target >= {target:,.0f}/s: {'met' if rate >= target else 'NOT met'}"
    print(line, flush=True)
    if result.get("adjacent_copy_rows_per_s"):
        print(
            f"  {'':<44} {result['fraction_of_adjacent_copy']:.2f} x a raw COPY of the same rows "
            f"measured just before it ({result['adjacent_copy_rows_per_s']:,.0f} rows/s)",
            flush=True,
        )
    if result.get("small_peak_rss_mib") is not None:
        print(
            f"  {'':<44} peak RSS {result['small_peak_rss_mib']:,.0f} MiB for "
            f"{result['small_rows']:,} rows, {result['peak_rss_mib']:,.0f} MiB for "
            f"{result['rows']:,} rows (flat in file size); phases (s) {result['phases']}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--touchpoints", type=int, default=1_000_000, help="N for COPY and CSV")
    parser.add_argument(
        "--batch-touchpoints", type=int, default=100_000, help="events sent to /v1/batch"
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    args = parser.parse_args(argv)

    url = bench_database_url(DATABASE, "ingest")
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifecycle.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from customers.models import TouchpointType

    print(
        f"Ingest benchmark: {args.customers:,} customers, COPY of {args.touchpoints:,} "
        f"touchpoints, /v1/batch of {args.batch_touchpoints:,} (PostgreSQL, "
        f"{os.cpu_count()} cores, gunicorn {args.workers} workers)",
        flush=True,
    )
    call_command("migrate", verbosity=0)
    external_ids = generate_customers(args.customers)
    type_keys = list(TouchpointType.objects.values_list("key", flat=True))

    copy_rate = measure_copy(args.touchpoints)
    results: dict = {"copy_rows_per_s": copy_rate}
    load = os.getloadavg()
    print(
        f"  {'raw COPY into the touchpoint table':<44} {copy_rate:>11,.0f} rows/s   (ceiling)"
        f"   load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        flush=True,
    )

    process, base_url, log = gunicorn_start(url, args.workers)
    try:
        _touchpoint_tables_empty()
        batch = measure_v1_batch(base_url, args.batch_touchpoints, external_ids)
        results["v1_batch"] = batch
        _report(
            f"/v1/batch ({batch['batches']} gzip batches of ~{batch['per_batch']:,.0f})",
            batch,
            copy_rate,
        )
        ctx = IngestContext(
            base_url=base_url,
            database_url=url,
            touchpoints=args.touchpoints,
            customer_external_ids=external_ids,
            type_keys=type_keys,
            copy_rows_per_s=copy_rate,
        )
        for name in PLUGINS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                print(f"  {name}: not present, skipped")
                continue
            _touchpoint_tables_empty()
            result = module.measure(ctx)
            results[name] = result
            label = LABELS.get(name, name.rsplit(".", 1)[1]).format(rows=result.get("rows", 0))
            _report(label, result, copy_rate, TARGETS.get(name))
    finally:
        gunicorn_stop(process)
    load = os.getloadavg()
    print(f"  load average after the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"(gunicorn log: {log})")
    return results


if __name__ == "__main__":
    main()

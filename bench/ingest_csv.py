"""CSV import benchmark (PostgreSQL): rows/s of the real import service, and its peak memory
at two file sizes to show it is flat in file size.

``measure(ctx)`` is what the ingest benchmark (``bench/bench_ingest.py``) calls. ``ctx``
(an object or a dict) gives ``database_url`` (a migrated PostgreSQL database with customers),
``customer_external_ids``, ``type_keys``, ``touchpoints`` (rows in the big file, default
1,000,000) and ``copy_rows_per_s`` (raw ``COPY`` into the touchpoint table, measured by the
caller in the same run). It writes the CSV files to a temporary folder, measures a raw ``COPY``
of the big file's rows right before importing it (the adjacent ceiling), and imports each in a
fresh Python process (``python -m bench.ingest_csv --child``), which times the import and
reports its own peak RSS (``VmHWM``), so the figure is the importer's and nothing else's.

Standalone (before or without the harness)::

    python -m bench.ingest_csv [--touchpoints 1000000] [--customers 5000]

recreates its own database ``lifecycle_csv_bench`` on the server of DATABASE_URL (or
127.0.0.1), migrates it, generates customers in SQL, measures raw ``COPY`` of the same rows
into ``customers_touchpoint`` as the baseline, then calls ``measure``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.database import bench_database_url, engine_rows_insert, recreate_database

ROOT = Path(__file__).resolve().parent.parent
SMALL_ROWS = 250_000
BENCH_DB = "lifecycle_csv_bench"


def _get(ctx, name: str, default=None):
    if isinstance(ctx, dict):
        return ctx.get(name, default)
    return getattr(ctx, name, default)


def write_csv(path: Path, rows: int, customer_ids: list[str], type_keys: list[str]) -> None:
    """``rows`` touchpoints over the last 18 months, in time order, each with an event id."""
    rng = random.Random(rows)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=548)
    step = 548 * 86_400 / rows
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id,customer_external_id,type,occurred_at,value\n")
        lines = []
        for i in range(rows):
            when = start + timedelta(seconds=int(i * step))
            value = f"{rng.randint(100, 99_999) / 100:.2f}" if i % 20 == 0 else ""
            lines.append(
                f"csv-{i},{rng.choice(customer_ids)},{rng.choice(type_keys)},"
                f"{when:%Y-%m-%dT%H:%M:%S}Z,{value}\n"
            )
            if len(lines) == 50_000:
                f.writelines(lines)
                lines = []
        f.writelines(lines)


def _run_child(database_url: str, path: Path, source: str) -> dict:
    """Import ``path`` in a fresh process; its JSON report (seconds, rows, peak RSS)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.ingest_csv", "--child", str(path), source],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "DEBUG": "false"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"CSV import child failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(ctx) -> dict:
    """Import a 1M-row touchpoint CSV (and a 250k one) with the real service; rows/s and peak
    memory of each, plus the ratio to raw COPY when the caller measured it."""
    database_url = _get(ctx, "database_url")
    customer_ids = list(_get(ctx, "customer_external_ids"))
    type_keys = list(_get(ctx, "type_keys"))
    rows = int(_get(ctx, "touchpoints", 1_000_000) or 1_000_000)
    small_rows = min(SMALL_ROWS, max(rows // 4, 1))
    copy_rate = _get(ctx, "copy_rows_per_s")
    stamp = f"{time.time():.0f}"
    with tempfile.TemporaryDirectory(prefix="csv-bench-") as folder:
        small_path, big_path = Path(folder) / "small.csv", Path(folder) / "big.csv"
        write_csv(small_path, small_rows, customer_ids, type_keys)
        write_csv(big_path, rows, customer_ids, type_keys)
        small = _run_child(database_url, small_path, f"bench-csv-s-{stamp}")
        # The same rows COPY'd just before the import: on a shared machine the load moves
        # within minutes, so the ratio to this adjacent COPY is the steadier figure.
        adjacent_copy = raw_copy_rows_per_s(database_url, big_path)
        big = _run_child(database_url, big_path, f"bench-csv-{stamp}")
    for report, expected in ((small, small_rows), (big, rows)):
        if report["created"] != expected:
            raise RuntimeError(f"CSV import created {report['created']:,} of {expected:,}")
    result = {
        "rows": rows,
        "seconds": big["seconds"],
        "rows_per_s": rows / big["seconds"],
        "peak_rss_mib": big["peak_rss_mib"],
        "small_rows": small_rows,
        "small_rows_per_s": small_rows / small["seconds"],
        "small_peak_rss_mib": small["peak_rss_mib"],
        "process_rss_before_mib": big["rss_before_mib"],
        "phases": big["timings"],
        "adjacent_copy_rows_per_s": adjacent_copy,
        "fraction_of_adjacent_copy": rows / big["seconds"] / adjacent_copy,
    }
    if copy_rate:
        result["fraction_of_copy"] = result["rows_per_s"] / copy_rate
    return result


def _peak_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM`` is per address space, so unlike
    ``ru_maxrss`` it does not inherit the parent's peak across fork + exec."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(path: str, source: str) -> None:
    """Run one import in this process and print a JSON report on the last line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifecycle.settings")
    import django

    django.setup()
    from imports import services
    from imports.models import ImportRun

    rss_before = _peak_rss_mib()
    started = time.perf_counter()
    run = services.import_file(
        kind=ImportRun.Kind.TOUCHPOINTS, path=path, source=source, origin="bench"
    )
    seconds = time.perf_counter() - started
    peak = _peak_rss_mib()
    if run.status != ImportRun.Status.SUCCEEDED:
        raise SystemExit(f"import {run.status}: {run.message}")
    print(
        json.dumps(
            {
                "seconds": seconds,
                "created": run.created_count,
                "rss_before_mib": rss_before,
                "peak_rss_mib": peak,
                "timings": run.timings,
            }
        )
    )


# --- standalone ----------------------------------------------------------------------------


def _prepare(url: str, customers: int) -> tuple[list[str], list[str]]:
    """Recreate, migrate, and fill the bench database with customers (set-based SQL)."""
    import psycopg

    recreate_database(url)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO customers_customer (external_id, email, name, company, plan, region,
                spend_tier, lifetime_revenue, signup_date, email_opt_out, is_identified, traits,
                created_at, updated_at)
            SELECT 'bench-' || g, 'c' || g || '@bench.example', 'Customer ' || g, '', 'Pro',
                'Europe', 'mid', 0, current_date - 600, false, true, '{}', now(), now()
            FROM generate_series(1, %s) g
            """,
            [customers],
        )
        engine_rows_insert(conn)
        conn.execute("VACUUM ANALYZE")
        ids = [r[0] for r in conn.execute("SELECT external_id FROM customers_customer")]
        keys = [r[0] for r in conn.execute("SELECT key FROM customers_touchpointtype")]
    return ids, keys


def raw_copy_rows_per_s(url: str, path: Path) -> float:
    """The ceiling: the same rows, ids already resolved, COPY'd straight into the touchpoint
    table in one transaction (commit included: the table's reference checks are part of
    the cost), then removed again."""
    import csv

    import psycopg

    with psycopg.connect(url) as conn:
        customer_ids = dict(conn.execute("SELECT external_id, id FROM customers_customer"))
        type_ids = dict(conn.execute("SELECT key, id FROM customers_touchpointtype"))
        lines = []
        null = "\\N"
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader)
            for key, ext, type_key, occurred, value in reader:
                lines.append(
                    f"{customer_ids[ext]}\t{type_ids[type_key]}\t{occurred}\t{value or null}"
                    f"\traw-copy\t{key}\t{{}}\t2026-01-01T00:00:00Z\n"
                )
        payload = "".join(lines)
        del lines
        conn.execute("CHECKPOINT")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor().copy(
            "COPY customers_touchpoint (customer_id, type_id, occurred_at, value, source, "
            "idempotency_key, properties, received_at) FROM STDIN"
        ) as copy:
            for start in range(0, len(payload), 1 << 20):
                copy.write(payload[start : start + (1 << 20)])
        conn.commit()
        seconds = time.perf_counter() - started
        rows = payload.count("\n")
        conn.execute("DELETE FROM customers_touchpoint WHERE source = 'raw-copy'")
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM customers_touchpoint")
        conn.execute("CHECKPOINT")
    return rows / seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest_csv")
    parser.add_argument("--touchpoints", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=5_000)
    args = parser.parse_args(argv)
    url = bench_database_url(BENCH_DB, "CSV")
    print(
        f"CSV import benchmark: {args.touchpoints:,} touchpoints over {args.customers:,} "
        f"customers (PostgreSQL, {os.cpu_count()} cores)",
        flush=True,
    )
    customer_ids, type_keys = _prepare(url, args.customers)
    with tempfile.TemporaryDirectory(prefix="csv-bench-") as folder:
        path = Path(folder) / "copy.csv"
        write_csv(path, args.touchpoints, customer_ids, type_keys)
        copy_rate = raw_copy_rows_per_s(url, path)
    print(f"  raw COPY into customers_touchpoint      {copy_rate:12,.0f} rows/s", flush=True)
    result = measure(
        {
            "database_url": url,
            "customer_external_ids": customer_ids,
            "type_keys": type_keys,
            "touchpoints": args.touchpoints,
            "copy_rows_per_s": copy_rate,
        }
    )
    print(
        f"  CSV import, {result['rows']:,} rows            {result['rows_per_s']:12,.0f} rows/s"
        f"  = {result['fraction_of_copy']:.2f} x raw COPY   (target >= 100,000 rows/s)"
    )
    print(f"    phases (s): {json.dumps(result['phases'])}")
    print(
        f"  peak RSS: {result['peak_rss_mib']:,.0f} MiB for {result['rows']:,} rows, "
        f"{result['small_peak_rss_mib']:,.0f} MiB for {result['small_rows']:,} rows "
        f"(process before the import: {result['process_rss_before_mib']:,.0f} MiB)"
    )
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
    else:
        main()

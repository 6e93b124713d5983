"""Staff-screen benchmark on PostgreSQL: server time of each screen at 1M customers.

Generates, in a database of its own (``lifecycle_screens_bench`` on the server of
DATABASE_URL, or 127.0.0.1), N customers (default 1,000,000) with engine state, 20·N
touchpoints over 400 days, 3·N stage changes, 400 days of packed score snapshots and the
daily stage summary — set-based SQL plus COPY for the packed blocks. Engine state is
synthetic (drawn in SQL, like a real population's mix of stages) rather than computed by a
full rescore: this benchmark measures reads, ``bench engine`` measures the engine.

Then it computes the screens' precomputed rows as the beat task does after engine jobs (the
dashboard summary and the ranked renewal-risk list; timed, printed, not per request) and,
with Django's test client (``force_login`` as an account owner with every role), requests
each screen 50 times after a warm-up and prints p50/p95 server time and queries per request.
The baseline measured in the same run is the first page of the unfiltered customer list; the
page 10,000 rows deep is reported as a ratio to its first page (target ≤ 2×), every screen
against 300 ms p95.

Usage: ``python -m bench screens [--customers N] [--requests 50] [--reuse]``.
To measure another screen, add one line to ``screens_to_measure``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import timedelta

import numpy as np

from bench.database import use_bench_database

DB_NAME = "lifecycle_screens_bench"
TARGET_MS = 300.0
SNAPSHOT_DAYS = 400
THREE_FILTERS = "stage=cooling&stage=at_risk&region=Europe&score_max=70"
SEGMENT_FILTERS = "stage=at_risk&region=Europe&inactive_days_min=30"


def _step(label: str, fn: Callable[[], object]) -> None:
    started = time.perf_counter()
    fn()
    print(f"  {label:<52} {time.perf_counter() - started:8.1f} s", flush=True)


# --- data --------------------------------------------------------------------------------


def generate_people(customers: int) -> None:
    """Owners, customers and their engine rows (stage mix like a real base)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from customers.engagement import engine_config

    owners = [
        get_user_model().objects.create(username=f"bench-owner-{i}", is_staff=True).pk
        for i in range(20)
    ]
    with connection.cursor() as c:
        c.execute("SET session_replication_role = replica")
        c.execute(
            """
            INSERT INTO customers_customer (id, external_id, email, name, company, plan, region,
                spend_tier, lifetime_revenue, signup_date, renewal_date, email_opt_out,
                is_identified, traits, created_at, updated_at, owner_id)
            SELECT g, 'bench-' || g, 'c' || g || '@bench.example',
                (ARRAY['Ada','Ben','Cleo','Dev','Ema','Farid','Grace','Hiro'])[1 + g %% 8]
                    || ' ' || (ARRAY['Khan','Silva','Rossi','Xu','Okafor','Meyer'])[1 + g %% 6]
                    || ' ' || g,
                'Company ' || (g %% 5000),
                (ARRAY['Free','Starter','Growth','Pro'])[1 + g %% 4],
                (ARRAY['North America','Europe','APAC','LATAM'])[1 + (g / 7) %% 4],
                (ARRAY['free','low','mid','high'])[1 + g %% 4], (g %% 997) * 10.0,
                current_date - (60 + g %% 480),
                CASE WHEN g %% 5 = 0 THEN NULL ELSE current_date + (g %% 365) END,
                false, true, '{}', now(), now(),
                CASE WHEN g %% 3 = 0 THEN (%s::bigint[])[1 + g %% 20] END
            FROM generate_series(1, %s) g
            """,
            [owners, customers],
        )
        c.execute(
            "SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [customers]
        )
        # Stage by a hash bucket; recency, stage age, P(alive) and trend consistent with it.
        buckets = """
            FROM generate_series(1, %s) g,
            LATERAL (SELECT h, CASE
                WHEN h < 38 THEN 'engaged' WHEN h < 45 THEN 'new' WHEN h < 60 THEN 'cooling'
                WHEN h < 70 THEN 'at_risk' WHEN h < 92 THEN 'lapsed' ELSE 'reengaged' END
                AS stage,
                CASE WHEN h < 45 THEN h %% 10 WHEN h < 60 THEN 10 + h %% 20
                     WHEN h < 70 THEN 30 + h * 3 %% 30 WHEN h < 92 THEN 60 + h * 13 %% 340
                     ELSE h %% 14 END AS days,
                CASE WHEN h < 45 THEN 0.9 WHEN h < 60 THEN 0.6 WHEN h < 70 THEN 0.3
                     WHEN h < 92 THEN 0.05 ELSE 0.8 END AS p_alive
                FROM (SELECT (hashint4(g) & 2147483647) %% 100 AS h) x) r
        """
        c.execute(
            "INSERT INTO customers_engagement (customer_id, trend_30d, stage, stage_since, "
            "stage_rule) SELECT g, (hashint4(g + 3) %% 60) / 2.0, r.stage, "
            "now() - ((hashint4(g + 5) & 2147483647) %% 60) * interval '1 day', r.stage" + buckets,
            [customers],
        )
        # Raw (decayed) points 0–40 now, stored as forward-decay sums (decay.py): scores 0–94.
        config = engine_config()
        growth = 2 ** ((time.time() - config.epoch) / (config.half_life_days * 86_400))
        c.execute(
            "INSERT INTO customers_scorestate (customer_id, decay_sum, first_engagement_at, "
            "last_engagement_at, frequency, expected_gap_days, p_alive, computed_at) "
            "SELECT g, ((hashint4(g + 11) & 2147483647) %% 40000) / 1000.0 * %s, "
            "now() - interval '400 days', now() - (r.days * interval '1 day'), 20, "
            "5 + g %% 20, r.p_alive, now()" + buckets,
            [growth, customers],
        )
        c.execute("SET session_replication_role = DEFAULT")


def generate_history(customers: int, touchpoints: int) -> None:
    """Touchpoints (arrival order, 400 days), stage changes, daily stage summary, job runs."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SET session_replication_role = replica")
        c.execute("DROP INDEX IF EXISTS touchpoint_customer_time_idx")
        c.execute("SELECT id FROM customers_touchpointtype ORDER BY id")
        types = [row[0] for row in c.fetchall()]
        c.execute(
            """
            INSERT INTO customers_touchpoint (customer_id, type_id, occurred_at, source,
                properties, received_at)
            SELECT 1 + (hashint4(g) & 2147483647) %% %(n)s,
                   (%(types)s::bigint[])[1 + (hashint4(g + 7) & 2147483647) %% %(k)s],
                   now() - interval '400 days' + (g::float8 / %(m)s) * interval '400 days',
                   CASE WHEN g %% 50 = 0 THEN 'campaign' ELSE 'bench' END, '{}', now()
            FROM generate_series(1, %(m)s) g
            """,
            {"n": customers, "m": touchpoints, "types": types, "k": len(types)},
        )
        c.execute(
            "CREATE INDEX touchpoint_customer_time_idx ON customers_touchpoint "
            "(customer_id, occurred_at) INCLUDE (type_id)"  # exactly as the migration has it
        )
        c.execute(
            """
            INSERT INTO customers_stagechange (customer_id, from_stage, to_stage, changed_at,
                score, p_alive, rule)
            SELECT 1 + (hashint4(g + 1) & 2147483647) %% %(n)s, s.f, s.t,
                   now() - interval '400 days' + (g::float8 / %(m)s) * interval '400 days',
                   50, 0.5, s.t
            FROM generate_series(1, %(m)s) g,
            LATERAL (SELECT (ARRAY['engaged','cooling','at_risk','lapsed','reengaged',
                                   'engaged'])[1 + (hashint4(g + 2) & 2147483647) %% 6] AS f,
                            (ARRAY['cooling','at_risk','lapsed','reengaged','engaged',
                                   'cooling'])[1 + (hashint4(g + 9) & 2147483647) %% 6] AS t) s
            WHERE s.f <> s.t
            """,
            {"n": customers, "m": 3 * customers},
        )
        c.execute(
            """
            INSERT INTO customers_stagedaily (day, stage, customers, revenue)
            SELECT current_date - d, s.stage, (%s * s.share * (1 + sin(d / 20.0) / 10))::int, 0
            FROM generate_series(0, %s) d,
                 (VALUES ('engaged', .38), ('new', .07), ('cooling', .15), ('at_risk', .10),
                         ('lapsed', .22), ('reengaged', .08)) s(stage, share)
            """,
            [customers, SNAPSHOT_DAYS],
        )
        c.execute(
            """
            INSERT INTO customers_jobrun (kind, status, started_at, finished_at,
                customers_processed, changes_made, chunks_total, chunks_done, error, detail,
                triggered_by)
            SELECT (ARRAY['refresh','nightly','fit'])[1 + g % 3], 'succeeded',
                   now() - g * interval '2 minutes', now() - g * interval '2 minutes'
                   + interval '3 seconds', 1000, 10, 1, 1, '', '{}', 'bench'
            FROM generate_series(1, 200) g
            """
        )
        c.execute("SET session_replication_role = DEFAULT")


def generate_snapshots(customers: int, days: int = SNAPSHOT_DAYS) -> None:
    """``days`` daily snapshots, packed per block of 1,024 ids (COPY)."""
    from django.db import connection
    from django.utils import timezone

    from customers.engine import snapshots

    rng = np.random.default_rng(7)
    size = snapshots.BLOCK_SIZE
    n_blocks = customers // size + 1
    slots = n_blocks * size
    present = np.zeros(slots, dtype=bool)
    present[1 : customers + 1] = True
    base = rng.uniform(0, 100, slots)
    stage = rng.integers(0, 6, slots).astype(np.uint8)
    p_alive = rng.uniform(0, 1, slots)
    today = timezone.now().date()
    connection.ensure_connection()
    with (
        connection.connection.cursor() as cursor,
        cursor.copy(
            "COPY customers_scoresnapshot (day, block, scores, stages, p_alive) FROM STDIN"
        ) as copy,
    ):
        for offset in range(days, -1, -1):
            drift = np.clip(base + rng.normal(0, 3, slots), 0, 100)
            scores = np.where(present, np.round(drift * 100), 65535).astype("<u2")
            stages = np.where(present, stage, 255).astype(np.uint8)
            pa = np.where(present, np.round(p_alive * 10_000), 65535).astype("<u2")
            day = today - timedelta(days=offset)
            for b in range(n_blocks):
                window = slice(b * size, (b + 1) * size)
                copy.write_row(
                    (
                        day,
                        b,
                        scores[window].tobytes(),
                        stages[window].tobytes(),
                        pa[window].tobytes(),
                    )
                )


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as c:
        for table in (
            "customers_customer",
            "customers_engagement",
            "customers_scorestate",
            "customers_touchpoint",
            "customers_stagechange",
            "customers_scoresnapshot",
        ):
            c.execute(f"VACUUM ANALYZE {table}")


# --- measurement -------------------------------------------------------------------------


def _deep_cursor(params: str, sort_name: str, depth: int) -> str:
    """The page cursor ``depth`` rows into a filtered, sorted list (setup, not timed)."""
    from django.http import QueryDict

    from customers.filters import CustomerFilter
    from customers.listing import SORTS, engine_joined, keyset_page
    from customers.models import Customer
    from customers.selectors import customers_with_state

    filterset = CustomerFilter(QueryDict(params), queryset=Customer.objects.all())
    assert filterset.is_valid(), filterset.errors
    rows = customers_with_state(engine_joined(filterset.qs))
    page = keyset_page(rows, SORTS[sort_name], size=depth)
    assert page.next_cursor, f"fewer than {depth} rows match {params!r}"
    return page.next_cursor


def refresh_summaries() -> None:
    """The screens' precomputed rows (dashboard summary, ranked renewal-risk list), as the
    beat task computes them after engine jobs — setup, not timed per request."""
    from django.db import connection

    from customers.dashboard import dashboard_summary_refresh
    from success.risk import renewal_risk_refresh

    _step("dashboard summary refresh (beat task, off-request)", dashboard_summary_refresh)
    _step("renewal-risk list refresh (beat task, off-request)", renewal_risk_refresh)
    _step("renewal-risk list refresh again (steady state)", renewal_risk_refresh)
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE success_renewalrisk")  # autovacuum's part after a big fill


def risk_variants() -> Callable[[], str]:
    """The renewal-risk list in turn (``bench.screens_risk.VARIANTS``): default 90-day
    window, 30 days, "my accounts", page 3."""
    from urllib.parse import urlencode

    from django.urls import reverse

    from bench.screens_risk import VARIANTS

    url = reverse("renewal-risk")
    variants = itertools.cycle([f"{url}?{urlencode(v)}" if v else url for v in VARIANTS])
    return lambda: next(variants)


def screens_to_measure(customers: int) -> list[tuple[str, Callable[[], str]]]:
    """(label, URL maker) per measured screen — one line each. A maker is called per request
    so a screen can vary its target (e.g. a different customer each time). Requests are
    made as an account owner with the admin and customer-success roles."""
    from django.urls import reverse

    depth = min(10_000, customers // 50)  # 10,000 from 500,000 customers on
    plain_deep = _deep_cursor("", "-score", depth)
    filtered_deep = _deep_cursor(THREE_FILTERS, "-score", depth)
    ids = random.Random(3)
    lst = reverse("customer-list")
    return [
        ("dashboard", lambda: reverse("home")),
        ("customer list, first page", lambda: lst),
        (f"customer list, {depth:,} rows deep", lambda: f"{lst}?after={plain_deep}"),
        ("customer list, 3 filters, first page", lambda: f"{lst}?{THREE_FILTERS}"),
        (
            f"customer list, 3 filters, {depth:,} rows deep",
            lambda: f"{lst}?{THREE_FILTERS}&after={filtered_deep}",
        ),
        ("customer detail", lambda: reverse("customer-detail", args=[ids.randint(1, customers)])),
        ("segment live count", lambda: f"{reverse('segment-count')}?{SEGMENT_FILTERS}"),
        ("renewal-risk list (4 variants)", risk_variants()),
    ]


def measure(client, make_url: Callable[[], str], requests: int) -> tuple[float, float, int]:
    """p50 and p95 server milliseconds over ``requests`` requests (after 3 warm-ups), and
    the queries of one request."""
    from django.db import connection

    for _ in range(3):
        response = client.get(make_url())
        assert response.status_code == 200, (make_url(), response.status_code)
    executed: list[str] = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(make_url())
    times = []
    for _ in range(requests):
        url = make_url()
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    times.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    return statistics.median(times), p95, len(executed)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench screens")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--touchpoints-per-customer", type=int, default=20)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="keep existing bench data")
    args = parser.parse_args(argv)

    use_bench_database(DB_NAME, "screens", reuse=args.reuse)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.DEBUG = False
    n = args.customers
    print(
        f"Screens benchmark: {n:,} customers, {n * args.touchpoints_per_customer:,} "
        f"touchpoints, {SNAPSHOT_DAYS} days of snapshots (PostgreSQL, {os.cpu_count()} cores)",
        flush=True,
    )
    call_command("migrate", verbosity=0)
    if not args.reuse:
        _step("generate customers and engine rows (SQL)", lambda: generate_people(n))
        _step(
            "generate touchpoints, stage changes, summaries (SQL)",
            lambda: generate_history(n, n * args.touchpoints_per_customer),
        )
        _step(f"generate {SNAPSHOT_DAYS} days of snapshots (COPY)", lambda: generate_snapshots(n))
        _step("VACUUM ANALYZE", analyze)
    refresh_summaries()

    # An account owner (for "my accounts") with the roles every measured screen needs.
    from django.contrib.auth.models import Group

    from customers.roles import Role

    # bench-owner-1 owns ~16,700 accounts that all have a renewal date (owner 0's have none).
    owner = get_user_model().objects.get(username="bench-owner-1")
    owner.groups.add(*(Group.objects.get_or_create(name=r.value)[0] for r in Role))
    client = Client()
    client.force_login(owner)
    print(f"\n  load average before measuring: {_load()}", flush=True)
    print(f"\n  {'screen':<40} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}  target", flush=True)
    results: dict[str, tuple[float, float, int]] = {}
    for label, make_url in screens_to_measure(n):
        p50, p95, queries = measure(client, make_url, args.requests)
        results[label] = (p50, p95, queries)
        verdict = "ok" if p95 <= TARGET_MS else "OVER"
        print(f"  {label:<40} {p50:8.1f} {p95:8.1f} {queries:8d}  {verdict}", flush=True)
    labels = list(results)
    first, deep, first_f, deep_f = (results[labels[i]][1] for i in (1, 2, 3, 4))
    print(
        f"\n  deep page / first page (p95): unfiltered {deep / first:.2f}x, "
        f"3 filters {deep_f / first_f:.2f}x (target ≤ 2x)",
        flush=True,
    )
    worst = max(p95 for _, p95, _ in results.values())
    print(
        f"  slowest p95 {worst:.1f} ms (target ≤ {TARGET_MS:.0f} ms); load average after: "
        f"{_load()}",
        flush=True,
    )
    return results


if __name__ == "__main__":
    main()

"""Engine benchmark on PostgreSQL: full rescore, incremental refresh, MBG/NBD fit.

Generates N customers and M touchpoints (default 1,000,000 / 20,000,000) in a database of
its own (``lifecycle_bench`` on the server of DATABASE_URL, or 127.0.0.1), then measures in
one run, each against a baseline measured in the same run:

1. baseline: ``SELECT customer_id, count(*) FROM touchpoint GROUP BY customer_id``;
2. full rescore after a weight change (decay sums written back for every customer), and a
   naive per-customer ORM loop on a 10,000-customer sample, extrapolated;
3. incremental refresh after 10,000 new touchpoints over 5,000 customers, vs the rescore;
4. MBG/NBD fit + P(alive) for every customer: seconds and peak memory.

Touchpoints are generated in arrival (time) order, as live ingest writes them, so a
customer's history is spread over the whole table — the unflattering case for id-range chunks.

Usage: ``python -m bench engine [--customers N] [--touchpoints M] [--keep]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from bench.database import engine_rows_insert, use_bench_database


def _timed(label: str, fn, results: dict) -> float:
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    results[label] = seconds
    print(f"  {label:<58} {seconds:9.2f} s", flush=True)
    return seconds


def generate(customers: int, touchpoints: int) -> None:
    """Customers, engagement rows and time-ordered touchpoints, set-based in SQL."""
    from django.db import connection

    with connection.cursor() as c:
        # Bulk load: skip per-row FK triggers (the rows are valid by construction) and build
        # the customer/time index once afterwards instead of 20M random btree inserts.
        c.execute("SET session_replication_role = replica")
        c.execute("DROP INDEX IF EXISTS touchpoint_customer_time_idx")
        c.execute("SELECT id, key FROM customers_touchpointtype")
        types = [row[0] for row in c.fetchall()]
        c.execute(
            """
            INSERT INTO customers_customer (id, external_id, email, name, company, plan, region,
                spend_tier, lifetime_revenue, signup_date, renewal_date, email_opt_out,
                is_identified, traits, created_at, updated_at)
            SELECT g, 'bench-' || g, 'c' || g || '@bench.example', 'Customer ' || g, '',
                (ARRAY['Free','Starter','Growth','Pro'])[1 + g %% 4],
                (ARRAY['North America','Europe','APAC','LATAM'])[1 + (g / 7) %% 4],
                (ARRAY['free','low','mid','high'])[1 + g %% 4], (g %% 997) * 10.0,
                current_date - (60 + g %% 480), current_date + (g %% 365), false, true, '{}',
                now(), now()
            FROM generate_series(1, %s) g
            """,
            [customers],
        )
        engine_rows_insert(c)
        c.execute(
            "SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [customers]
        )
        # Arrival order: occurred_at increases with the row; customers are drawn at random.
        c.execute(
            """
            INSERT INTO customers_touchpoint (customer_id, type_id, occurred_at, source,
                properties, received_at)
            SELECT 1 + (hashint4(g) & 2147483647) %% %(n)s,
                   (%(types)s::bigint[])[1 + (hashint4(g + 7) & 2147483647) %% %(k)s],
                   now() - interval '540 days' + (g::float8 / %(m)s) * interval '540 days',
                   'bench', '{}', now()
            FROM generate_series(1, %(m)s) g
            """,
            {"n": customers, "m": touchpoints, "types": types, "k": len(types)},
        )
        c.execute("SET session_replication_role = DEFAULT")
        c.execute(
            "CREATE INDEX touchpoint_customer_time_idx ON customers_touchpoint "
            "(customer_id, occurred_at) INCLUDE (type_id)"  # exactly as the migration has it
        )
    with connection.cursor() as c:
        c.execute("VACUUM ANALYZE customers_touchpoint")
        c.execute("VACUUM ANALYZE customers_engagement")
        c.execute("VACUUM ANALYZE customers_scorestate")
        c.execute("VACUUM ANALYZE customers_customer")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench engine")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--touchpoints", type=int, default=20_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep existing bench data")
    args = parser.parse_args(argv)

    use_bench_database("lifecycle_bench", "engine", reuse=args.reuse)
    from django.core.management import call_command
    from django.db import connection

    from customers import jobs
    from customers.engagement import engagement_fit, engagement_refresh, pending_record
    from customers.models import Customer, JobRun, ScoreState, Touchpoint, TouchpointType

    results: dict = {}
    print(
        f"Engine benchmark: {args.customers:,} customers, {args.touchpoints:,} touchpoints "
        f"(PostgreSQL, {os.cpu_count()} cores)",
        flush=True,
    )
    call_command("migrate", verbosity=0)  # --reuse: brings older bench data up to date
    if not args.reuse:
        _timed("generate data (SQL)", lambda: generate(args.customers, args.touchpoints), results)
        _timed(
            "initial full rescore (activity + stages)",
            lambda: jobs.run_inline(jobs.rescore_start(full=True)),
            results,
        )

    with connection.cursor() as c:  # the state autovacuum leaves between jobs
        for table in ("customers_touchpoint", "customers_engagement", "customers_scorestate"):
            c.execute(f"VACUUM ANALYZE {table}")

    def baseline():
        with connection.cursor() as c:
            c.execute("SELECT customer_id, count(*) FROM customers_touchpoint GROUP BY customer_id")
            c.fetchall()

    base = _timed("baseline: SELECT customer_id, count(*) … GROUP BY", baseline, results)

    login = TouchpointType.objects.get(key="login")
    login.weight += 1
    login.save()  # the change an admin makes; the rescore below is what it starts
    rescore = _timed(
        "full rescore after a weight change (1 worker)",
        lambda: jobs.run_inline(jobs.rescore_start(full=False)),
        results,
    )

    # Naive: a per-customer ORM loop over history, on a sample, extrapolated.
    sample = list(Customer.objects.order_by("id").values_list("id", flat=True)[:10_000])
    weights = dict(TouchpointType.objects.values_list("id", "weight"))

    def naive():
        from customers.engagement import engine_config
        from customers.engine.decay import decay_terms

        config = engine_config()
        for cid in sample:
            total = 0.0
            for type_id, when in Touchpoint.objects.filter(customer_id=cid).values_list(
                "type_id", "occurred_at"
            ):
                total += float(
                    decay_terms(
                        float(weights[type_id]),
                        when.timestamp(),
                        epoch=config.epoch,
                        half_life_days=config.half_life_days,
                    )
                )
            ScoreState.objects.filter(customer_id=cid).update(decay_sum=total)

    naive_s = _timed(f"naive ORM loop on {len(sample):,} customers", naive, results)
    naive_full = naive_s * args.customers / len(sample)

    # Incremental: 10,000 new touchpoints over 5,000 customers.
    from django.db import transaction
    from django.utils import timezone

    def ingest(shift: int = 0):
        """10,000 touchpoints, two each for every ``step``-th customer from 1 + shift."""
        now = timezone.now()
        rows = [
            Touchpoint(
                customer_id=1 + shift + (i % 5_000) * step,
                type=login,
                occurred_at=now,
                source="bench-incr",
            )
            for i in range(10_000)
        ]
        with transaction.atomic():
            created = Touchpoint.objects.bulk_create(rows, batch_size=5_000)
            pending_record([t.pk for t in created], [t.customer_id for t in created])

    # With --reuse, earlier runs' refreshes have already re-engaged the customers they
    # touched (few stage changes: a flattering figure), so each run starts at other ids.
    # The four rounds of a run touch ids `first + k·quarter` (k = 0..3) of every window of
    # `step` ids, never past the last customer. Runs are counted by the 8 rows each adds in
    # the first window, on the customer index (a count over every touchpoint would scan
    # 20M rows right before the cold measurement).
    step = args.customers // 5_000
    quarter = max(step // 4, 1)
    earlier = Touchpoint.objects.filter(customer_id__lte=step, source="bench-incr").count()
    first = earlier // 8 % quarter
    ingest(first)
    incremental = _timed(
        "incremental refresh: 10,000 touchpoints / 5,000 customers",
        lambda: engagement_refresh(),
        results,
    )
    # Three more refreshes, each for 5,000 *other* customers on other pages (at 1M
    # customers the rounds are 50 ids apart: never on one page of the engine tables), as
    # consecutive refreshes in production meet mostly different customers: none finds its
    # rows written and cached by the round before. (Repeating the same 5,000 customers
    # measured ~35 % less: a flattering figure.)
    next_rounds = []
    for k in (1, 2, 3):
        ingest(first + k * quarter)
        started = time.perf_counter()
        engagement_refresh()
        next_rounds.append(time.perf_counter() - started)
    incremental_warm = sorted(next_rounds)[1]
    print(
        f"  incremental refresh, next rounds (other customers, median of 3)"
        f"{incremental_warm:6.2f} s",
        flush=True,
    )
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def fit_and_p_alive():
        import numpy as np

        from customers.engagement import _latest_fit, _load_state, _p_alive

        fit = engagement_fit()
        state = _load_state("TRUE", [])
        p = _p_alive(state, time.time(), _latest_fit())
        results["fit_customers"] = fit.customers
        results["p_alive_computed"] = int((~np.isnan(p)).sum())

    fit_s = _timed("MBG/NBD fit + P(alive) for every customer", fit_and_p_alive, results)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    JobRun.objects.filter(kind=JobRun.Kind.NIGHTLY).delete()  # today may be done (--reuse)
    nightly_s = _timed(
        "whole nightly pass (stages, trend, snapshot written back)",
        lambda: jobs.run_inline(jobs.nightly_start()),
        results,
    )

    print("\nResults")
    print(f"  full rescore / baseline           {rescore / base:6.2f}x   (target <= 2.5x)")
    print(
        f"  naive ORM loop, extrapolated      {naive_full:9.0f} s = "
        f"{naive_full / rescore:,.0f}x the set-based rescore"
    )
    print(
        f"  incremental / full rescore        {100 * incremental / rescore:6.2f} %  (target < 2%)"
    )
    print(f"  incremental, next rounds / rescore {100 * incremental_warm / rescore:6.2f} %")
    print(
        f"  fit + P(alive), {results['p_alive_computed']:,} customers  {fit_s:6.1f} s   "
        f"(target < 60 s); peak RSS {peak_after / 1024:,.0f} MiB "
        f"(was {peak_before / 1024:,.0f} MiB before; target < 2 GiB)"
    )
    print(f"  whole nightly pass                {nightly_s:6.1f} s")
    results.update(
        ratio_rescore=rescore / base,
        naive_extrapolated=naive_full,
        incremental_share=incremental / rescore,
        incremental_warm_share=incremental_warm / rescore,
        peak_rss_mib=peak_after / 1024,
    )
    return results


if __name__ == "__main__":
    main()

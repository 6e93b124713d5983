"""Plan-results benchmark on PostgreSQL: server time of the results page for a plan with
100,000 enrollments.

Generates, in a database of its own (``lifecycle_plan_results_bench`` on the server of
DATABASE_URL, or 127.0.0.1), N customers (default 100,000) with 12 background touchpoints
each over 400 days, and one active plan (day-7 email, day-14 coupon, day-21 CS task) with N
enrollments in both arms (10% holdout) spread over 150 days: step executions (sent / held
out, a few failed), re-engagement that falls with days since the last action (the best-moment
chart has a shape to find), coupons (some redeemed) and purchase touchpoints after
enrollment. Numpy draws, COPY loads.

Then it times the full aggregation (``results_refresh``: what the plan tick stores every
5 minutes) and, with Django's test client (``force_login``), requests the results page 50
times after 3 warm-ups, printing p50/p95 server time and queries per request against the
target (300 ms p95). The baseline measured in the same run is the plan list (one GROUP BY
over the same enrollments). ``uptime`` load is printed next to the figures.

Usage: ``python -m bench plan_results [--enrollments N] [--requests 50] [--reuse]``.
``generate_plan_history`` also fills a development database for screenshots.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np

from bench.database import use_bench_database

DB_NAME = "lifecycle_plan_results_bench"
TARGET_MS = 300.0
STEPS = (  # (delay days from enrollment, action, config)
    (7, "email", {"subject": "We miss you, {{ first_name }}", "body_text": "Hi {{ name }}"}),
    (14, "coupon", {"kind": "amount", "value": 15, "cost": 15, "expires_days": 30}),
    (21, "cs_task", {"title": "Call {{ name }}", "note": "", "due_days": 3}),
)


def _step(label: str, fn: Callable[[], object]) -> object:
    started = time.perf_counter()
    out = fn()
    print(f"  {label:<52} {time.perf_counter() - started:8.1f} s", flush=True)
    return out


def _load() -> str:
    try:
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        return "load n/a"


# --- data ----------------------------------------------------------------------------------


def generate_customers(customers: int) -> None:
    """Customers 1..N and 12 background (valueless) touchpoints each over 400 days."""
    from django.db import connection

    with connection.cursor() as c:
        c.execute("SET session_replication_role = replica")
        c.execute(
            """
            INSERT INTO customers_customer (id, external_id, email, name, company, plan, region,
                spend_tier, lifetime_revenue, signup_date, renewal_date, email_opt_out,
                is_identified, traits, created_at, updated_at)
            SELECT g, 'bench-' || g, 'c' || g || '@bench.example', 'Customer ' || g, '',
                (ARRAY['Free','Starter','Growth','Pro'])[1 + g %% 4],
                (ARRAY['North America','Europe','APAC','LATAM'])[1 + (g / 7) %% 4],
                (ARRAY['free','low','mid','high'])[1 + g %% 4], (g %% 997) * 10.0,
                current_date - 500, current_date + (g %% 365), false, true, '{}', now(), now()
            FROM generate_series(1, %s) g
            """,
            [customers],
        )
        c.execute(
            "SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [customers]
        )
        c.execute("SELECT id FROM customers_touchpointtype WHERE key = 'login'")
        login = c.fetchone()[0]
        c.execute(
            """
            INSERT INTO customers_touchpoint (customer_id, type_id, occurred_at, source,
                properties, received_at)
            SELECT g, %s,
                now() - ((hashint4(g * 16 + k) & 2147483647) %% 9600) * interval '1 hour',
                'bench', '{}', now()
            FROM generate_series(1, %s) g, generate_series(1, 12) k
            """,
            [login, customers],
        )
        c.execute("SET session_replication_role = DEFAULT")


def generate_plan_history(
    *,
    customer_ids: np.ndarray,
    now: datetime,
    holdout: float = 0.1,
    seed: int = 7,
    name: str = "Win back cooling customers",
    segment_name: str = "Cooling customers",
    max_age_days: float = 150.0,
) -> int:
    """One active plan with an enrollment per customer in ``customer_ids`` (PostgreSQL COPY).

    Returns the plan id. Draws: enrollment age U(0, max_age); days since the last action at
    enrollment ~ 5 + Gamma(2, 9); re-engagement probability falls with days since the last
    action at the first step (a logistic around day 38) and treated customers get +4 to +12
    points on top; the day they come back ~ Exp(mean 9), kept only when it has happened.
    """
    from django.db import connection

    from campaigns.models import Plan, PlanStep
    from customers.models import Stage, TouchpointType
    from segments.models import Segment

    rng = np.random.default_rng(seed)
    n = len(customer_ids)
    segment, _ = Segment.objects.get_or_create(
        name=segment_name, defaults={"params": {"stage": ["cooling"]}}
    )
    plan = Plan.objects.create(
        name=name,
        description="Day 7 email, day 14 coupon, day 21 call.",
        trigger_kind="stage_entered",
        trigger_params={"stage": "cooling"},
        status=Plan.Status.ACTIVE,
        holdout_percent=round(holdout * 100),
        launched_at=now - timedelta(days=max_age_days),
        start_at=now - timedelta(days=max_age_days),
    )
    steps = [
        PlanStep.objects.create(plan=plan, position=i + 1, delay_days=d, action=a, config=cfg)
        for i, (d, a, cfg) in enumerate(STEPS)
    ]
    offsets = np.array([s.delay_days for s in steps])
    final_wait = float(plan.final_wait_days)

    control = rng.random(n) < holdout
    age = rng.uniform(0, max_age_days, n)
    quiet_at_enrol = 5 + rng.gamma(2.0, 9.0, n)
    quiet_at_first = quiet_at_enrol + offsets[0]
    base = 0.05 + 0.30 / (1 + np.exp((quiet_at_first - 38) / 5))
    effect = np.where(control, 0.0, 0.04 + 0.08 / (1 + np.exp((quiet_at_first - 38) / 5)))
    comes_back = rng.random(n) < base + effect
    back_day = np.minimum(rng.exponential(9.0, n), offsets[-1] + final_wait - 0.01)
    reengaged = comes_back & (back_day <= age)
    end_of_ladder = offsets[-1] + final_wait
    exhausted = ~reengaged & (age >= end_of_ladder)
    status = np.where(reengaged, "reengaged", np.where(exhausted, "exhausted", "active"))
    horizon = np.where(reengaged, back_day, np.minimum(age, end_of_ladder))
    reached = offsets[None, :] <= horizon[:, None]  # [enrollment, step]
    steps_done = reached.sum(axis=1)
    # The step the customer came back after: the last one reached before the return.
    after_idx = np.where(reengaged & (steps_done > 0), steps_done - 1, -1)

    def ts(days_ago: np.ndarray) -> list[datetime]:
        return [now - timedelta(days=float(d)) for d in days_ago]

    enrolled_at = ts(age)
    segment_col = [segment.pk] * n
    step_ids = [s.pk for s in steps]
    connection.ensure_connection()
    raw = connection.connection
    with raw.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM campaigns_enrollment")
        first_enrollment = cur.fetchone()[0] + 1
        cur.execute("SELECT COALESCE(MAX(id), 0) FROM campaigns_stepexecution")
        first_execution = cur.fetchone()[0] + 1
        with cur.copy(
            "COPY campaigns_enrollment (id, plan_id, customer_id, arm, status, segment_id, "
            "enrolled_at, stage_at_enrollment, last_engagement_at_enrollment, "
            "days_since_last_action_at_first_step, steps_done, next_step_at, last_step_at, "
            "ended_at, reengaged_at, reengaged_after_step_id, exit_reason) FROM STDIN"
        ) as copy:
            for i in range(n):
                e_at = enrolled_at[i]
                done = int(steps_done[i])
                active = status[i] == "active"
                copy.write_row(
                    (
                        first_enrollment + i,
                        plan.pk,
                        int(customer_ids[i]),
                        "control" if control[i] else "treatment",
                        status[i],
                        segment_col[i] if i % 3 else None,  # a third arrive by stage only
                        e_at,
                        Stage.COOLING,
                        e_at - timedelta(days=float(quiet_at_enrol[i])),
                        float(quiet_at_first[i]),
                        done,
                        e_at + timedelta(days=float(offsets[done]))
                        if active and done < len(offsets)
                        else None,
                        e_at + timedelta(days=float(offsets[done - 1])) if done else None,
                        None if active else e_at + timedelta(days=float(horizon[i])),
                        e_at + timedelta(days=float(back_day[i])) if reengaged[i] else None,
                        step_ids[after_idx[i]] if after_idx[i] >= 0 else None,
                        "" if active else ("engagement action" if reengaged[i] else "all steps"),
                    )
                )
        executions = []  # (id, enrollment index, step index)
        next_id = first_execution
        for j in range(len(steps)):
            for i in np.flatnonzero(reached[:, j]):
                executions.append((next_id, int(i), j))
                next_id += 1
        failed = rng.random(len(executions)) < 0.004
        with cur.copy(
            "COPY campaigns_stepexecution (id, enrollment_id, step_id, plan_id, customer_id, "
            "action, status, due_at, attempts, next_attempt_at, claimed_by, idempotency_key, "
            "performed_at, result, error, created_at) FROM STDIN"
        ) as copy:
            for k, (xid, i, j) in enumerate(executions):
                due = enrolled_at[i] + timedelta(days=float(offsets[j]))
                if control[i]:
                    st, err = "held_out", ""
                elif failed[k]:
                    st, err = "failed", "SMTP 554: rejected"
                else:
                    st, err = "sent", ""
                copy.write_row(
                    (
                        xid,
                        first_enrollment + i,
                        step_ids[j],
                        plan.pk,
                        int(customer_ids[i]),
                        steps[j].action,
                        st,
                        due,
                        0 if control[i] else 1,
                        due,
                        "",
                        f"bench-{plan.pk}-{first_enrollment + i}-{step_ids[j]}",
                        due,
                        "{}",
                        err,
                        due,
                    )
                )
        coupon_step = next(j for j, s in enumerate(steps) if s.action == "coupon")
        with cur.copy(
            "COPY campaigns_coupon (code, kind, value, cost, expires_at, created_at, "
            "redeemed_at, customer_id, enrollment_id, execution_id) FROM STDIN"
        ) as copy:
            for xid, i, j in executions:
                if j != coupon_step or control[i]:
                    continue
                made = enrolled_at[i] + timedelta(days=float(offsets[j]))
                redeemed = reengaged[i] and rng.random() < 0.35
                copy.write_row(
                    (
                        f"P{plan.pk}X{xid}",
                        "amount",
                        15,
                        15,
                        made + timedelta(days=30),
                        made,
                        made + timedelta(days=float(rng.uniform(0, 10))) if redeemed else None,
                        int(customer_ids[i]),
                        first_enrollment + i,
                        xid,
                    )
                )
        # Purchases after enrollment: more, and more often, for customers who came back.
        purchase = TouchpointType.objects.get(key="purchase").pk
        rate = np.where(reengaged, 1.4, 0.25)
        counts = rng.poisson(rate)
        with cur.copy(
            "COPY customers_touchpoint (customer_id, type_id, occurred_at, value, source, "
            "properties, received_at) FROM STDIN"
        ) as copy:
            for i in np.flatnonzero(counts):
                window = min(float(age[i]), 90.0)
                for _ in range(int(counts[i])):
                    when = enrolled_at[i] + timedelta(days=float(rng.uniform(0, window)))
                    value = round(float(rng.uniform(20, 220)), 2)
                    copy.write_row(
                        (int(customer_ids[i]), purchase, when, value, "bench", "{}", now)
                    )
        for table in ("campaigns_enrollment", "campaigns_stepexecution", "campaigns_coupon"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT MAX(id) FROM {table}))"
            )
    return plan.pk


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as c:
        for table in (
            "customers_customer",
            "customers_touchpoint",
            "campaigns_enrollment",
            "campaigns_stepexecution",
            "campaigns_coupon",
        ):
            c.execute(f"VACUUM ANALYZE {table}")


# --- measurement ----------------------------------------------------------------------------


def measure(client, url: str, requests: int) -> tuple[float, float, int]:
    """p50 and p95 server milliseconds over ``requests`` requests (after 3 warm-ups), and
    the queries of one request."""
    from django.db import connection

    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    executed: list[str] = []

    def count(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        client.get(url)
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    times.sort()
    p95 = times[max(0, round(0.95 * len(times)) - 1)]
    return statistics.median(times), p95, len(executed)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench plan_results")
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--reuse", action="store_true", help="keep existing bench data")
    args = parser.parse_args(argv)

    use_bench_database(DB_NAME, "plan-results", reuse=args.reuse)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from campaigns.models import Enrollment, Plan

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    settings.DEBUG = False
    n = args.enrollments
    print(
        f"Plan-results benchmark: one plan with {n:,} enrollments, {n:,} customers "
        f"(PostgreSQL, {os.cpu_count()} cores)",
        flush=True,
    )
    call_command("migrate", verbosity=0)
    if not args.reuse:
        _step("generate customers and touchpoints (SQL)", lambda: generate_customers(n))
        _step(
            "generate plan, enrollments, executions, coupons, purchases (COPY)",
            lambda: generate_plan_history(customer_ids=np.arange(1, n + 1), now=timezone.now()),
        )
        _step("VACUUM ANALYZE", analyze)
    plan = Plan.objects.order_by("-pk").first()
    executions = plan.executions.count()
    print(
        f"  plan {plan.pk}: {Enrollment.objects.filter(plan=plan).count():,} enrollments, "
        f"{executions:,} step executions",
        flush=True,
    )
    admin, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client()
    client.force_login(admin)
    from campaigns.results import results_refresh

    refresh_ms = []
    for _ in range(5):
        started = time.perf_counter()
        results_refresh(plan)
        refresh_ms.append((time.perf_counter() - started) * 1000)
    print(
        f"  full aggregation (results_refresh, the tick's job every 5 min): "
        f"median {statistics.median(refresh_ms):.0f} ms over 5 runs",
        flush=True,
    )
    print(f"\n  {'screen':<40} {'p50 ms':>8} {'p95 ms':>8} {'queries':>8}  target", flush=True)
    results = {}
    for label, target in (
        ("plan list (baseline)", reverse("plan-list")),
        (f"plan results ({n:,} enrollments)", reverse("plan-results", args=[plan.pk])),
    ):
        p50, p95, queries = measure(client, target, args.requests)
        results[label] = (p50, p95, queries)
        verdict = "ok" if p95 <= TARGET_MS else "OVER"
        print(f"  {label:<40} {p50:8.1f} {p95:8.1f} {queries:8d}  {verdict}", flush=True)
    (base, res) = (results[k][1] for k in results)
    print(f"\n  results / plan list (p95): {res / base:.1f}x; {_load()}", flush=True)
    return results


if __name__ == "__main__":
    main()

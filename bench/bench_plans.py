"""Plan tick benchmark on PostgreSQL: one tick + dispatch over 100,000 due enrollments.

Generates N customers (default 100,000) in a database of its own (``lifecycle_plans_bench`` on
the server of DATABASE_URL, or 127.0.0.1), one always-on plan with six steps (email, coupon,
email showing the coupon, survey invitation, CS task, webhook) and N enrollments, each due
for one step, spread evenly over the six (10% in the control arm). Then it measures:

1. one plan tick (``campaigns.tick.plans_tick``): exits, enrolment, one execution row per due
   enrollment (INSERT … SELECT), held-out rows for the control arm;
2. dispatch of everything due (``campaigns.dispatch.dispatch_due``) in W processes (as W
   dispatch tasks would run; default 2): emails to Django's locmem backend (``--sink
   smtp-bytes``: serialized exactly as the SMTP backend does, then dropped —
   ``bench/mail_sink.py``), webhooks POSTed to a local HTTP
   receiver in a separate process, coupons and CS tasks written to the database.

It prints seconds for each phase, the total against the 30 s target, and the cost per
enrollment, with the machine's load average next to the figures.

Usage: ``python -m bench plans [--enrollments N] [--workers W] [--sink locmem|smtp-bytes]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import time

from bench.database import bench_database_url, recreate_database

DB_NAME = "lifecycle_plans_bench"
TARGET_SECONDS = 30.0

RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Answer in one write, as production servers do (an unbuffered header-then-body write
    # meets Nagle's algorithm and delayed ACKs on keep-alive connections: 40 ms stalls).
    wbufsize = 65536
    disable_nagle_algorithm = True
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass

ThreadingHTTPServer.request_queue_size = 256  # 16 concurrent senders: no resets
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def generate(n: int, webhook_url: str) -> int:
    """Customers, engine rows, a launched six-step plan and ``n`` due enrollments (SQL)."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from campaigns import services

    with connection.cursor() as c:
        c.execute(
            """
            INSERT INTO customers_customer (id, external_id, email, name, company, plan, region,
                spend_tier, lifetime_revenue, signup_date, email_opt_out, is_identified, traits,
                created_at, updated_at)
            SELECT g, 'bench-' || g, 'c' || g || '@bench.example', 'Customer ' || g, '', 'Pro',
                'Europe', 'mid', 100, current_date - 400, false, true, '{}', now(), now()
            FROM generate_series(1, %s) g
            """,
            [n],
        )
        c.execute(
            "INSERT INTO customers_engagement (customer_id, stage, stage_rule) "
            "SELECT g, 'cooling', '' FROM generate_series(1, %s) g",
            [n],
        )
        c.execute(
            "INSERT INTO customers_scorestate (customer_id, decay_sum, frequency, "
            "last_engagement_at, expected_gap_days) "
            "SELECT g, 3, 5, now() - interval '20 days', 5 FROM generate_series(1, %s) g",
            [n],
        )
        c.execute("SELECT setval(pg_get_serial_sequence('customers_customer', 'id'), %s)", [n])

    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    plan = services.plan_create(
        user=user,
        name="Bench win-back",
        trigger_kind="stage_entered",
        trigger_params={"stage": "cooling"},
        holdout_percent=10,
        frequency_cap_per_week=7,
    )
    steps = [
        ("email", {"subject": "We miss you, {{ first_name }}", "body_text": BODY}),
        ("coupon", {"kind": "percent", "value": 15, "expires_days": 30}),
        ("email", {"subject": "A gift", "body_text": "Use {{ coupon_code }}: {{ coupon_value }}"}),
        ("survey", {"subject": "Two minutes?", "question": "How are we doing?"}),
        ("cs_task", {"title": "Call {{ name }}", "note": "Score {{ score }}", "due_days": 2}),
        ("webhook", {"url": webhook_url, "event": "winback"}),
    ]
    for action, config in steps:
        services.step_add(
            plan=plan,
            user=user,
            action=action,
            config=config,
            delay_days=7,
            delay_basis="previous_step",
        )
    services.plan_launch(plan, user)
    now = timezone.now()
    with connection.cursor() as c:
        # Each enrollment is due for step (g mod 6) + 1; one in ten is in the control arm.
        c.execute(
            """
            INSERT INTO campaigns_enrollment (plan_id, customer_id, arm, status, enrolled_at,
                stage_at_enrollment, steps_done, next_step_at, last_step_at, exit_reason)
            SELECT %s, g, CASE WHEN g %% 10 = 0 THEN 'control' ELSE 'treatment' END, 'active',
                %s - interval '50 days', 'cooling', g %% 6, %s - interval '1 minute',
                CASE WHEN g %% 6 = 0 THEN NULL ELSE %s - interval '7 days' END, ''
            FROM generate_series(1, %s) g
            """,
            [plan.pk, now, now, now, n],
        )
        # The last action was before enrollment, so nobody exits as re-engaged.
        c.execute(
            "UPDATE customers_scorestate SET last_engagement_at = %s - interval '60 days'", [now]
        )
        for table in ("campaigns_enrollment", "customers_engagement", "customers_customer"):
            c.execute(f"VACUUM ANALYZE {table}")
    return plan.pk


BODY = (
    "Hi {{ name }},\n\nIt has been {{ days_since_last_action }} days since we last saw you. "
    "Your engagement score is {{ score }}.\n\nCome back and see what is new."
)


def _dispatch_worker(batch: int) -> dict:
    from django.core import mail
    from django.db import connections

    from bench.mail_sink import SENT
    from campaigns.dispatch import dispatch_due

    mail.outbox = []
    try:
        result = dispatch_due(batch_size=batch)
    finally:
        connections.close_all()
    return {
        "sent": result.sent,
        "failed": result.failed,
        "retried": result.retried,
        "by_action": dict(result.by_action),
        "emails": SENT["messages"] + len(mail.outbox),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench plans")
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="dispatch claim batch size")
    parser.add_argument(
        "--workers", type=int, default=2, help="dispatch processes (as dispatch tasks would run)"
    )
    parser.add_argument(
        "--sink",
        choices=["locmem", "smtp-bytes"],
        default="locmem",
        help="locmem: Django's in-memory backend; smtp-bytes: serialize as SMTP would, drop",
    )
    parser.add_argument("--reuse", action="store_true", help="keep existing bench data")
    args = parser.parse_args(argv)

    url = bench_database_url(DB_NAME, "plans")
    if not args.reuse:
        recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ["EMAIL_BACKEND"] = (
        "django.core.mail.backends.locmem.EmailBackend"
        if args.sink == "locmem"
        else "bench.mail_sink.EmailBackend"
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lifecycle.settings")
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    port = int(receiver.stdout.readline())
    webhook_url = f"http://127.0.0.1:{port}/hook"
    try:
        return _run(args, webhook_url)
    finally:
        receiver.terminate()
        receiver.wait(10)


def _run(args: argparse.Namespace, webhook_url: str) -> dict:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.db.models import Count

    from campaigns.models import StepExecution
    from campaigns.tick import plans_tick

    n = args.enrollments
    print(
        f"Plans benchmark: {n:,} due enrollments, six mixed steps (PostgreSQL, "
        f"{os.cpu_count()} cores, load {_load()})",
        flush=True,
    )
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    if not args.reuse:
        generate(n, webhook_url)
    print(f"  {'generate data':<44} {time.perf_counter() - started:8.2f} s", flush=True)

    started = time.perf_counter()
    tick = plans_tick()
    tick_s = time.perf_counter() - started
    print(
        f"  {'plan tick (exits, enrol, due executions)':<44} {tick_s:8.2f} s   "
        f"{tick.executions:,} rows, {tick.held_out:,} held out",
        flush=True,
    )

    started = time.perf_counter()
    connections.close_all()  # each forked worker opens its own connection
    with multiprocessing.get_context("fork").Pool(args.workers) as pool:
        parts = pool.map(_dispatch_worker, [args.batch] * args.workers)
    dispatch_s = time.perf_counter() - started
    sent = {key: sum(part[key] for part in parts) for key in ("sent", "failed", "retried")}
    by_sent: dict[str, int] = {}
    for part in parts:
        for action, count in part["by_action"].items():
            by_sent[action] = by_sent.get(action, 0) + count
    label = f"dispatch, {args.workers} processes (claim, send, record)"
    print(
        f"  {label:<44} {dispatch_s:8.2f} s   {sent['sent']:,} sent, {sent['failed']:,} "
        f"failed, {sent['retried']:,} to retry; per process {[p['sent'] for p in parts]}",
        flush=True,
    )
    by_action = dict(StepExecution.objects.values_list("action").annotate(n=Count("pk")).order_by())
    emails = sum(part["emails"] for part in parts)
    print(
        f"  sent per action: {by_sent}; emails in the sinks: {emails:,}; "
        f"rows per action: {by_action}",
        flush=True,
    )
    total = tick_s + dispatch_s
    verdict = "meets" if total <= TARGET_SECONDS else "MISSES"
    print(
        f"  {'total tick + dispatch':<44} {total:8.2f} s   ({verdict} the ≤ {TARGET_SECONDS:g} s "
        f"target)",
        flush=True,
    )
    print(
        f"  per enrollment: {1000 * total / n:.3f} ms "
        f"(tick {1000 * tick_s / n:.3f} ms, dispatch {1000 * dispatch_s / n:.3f} ms); "
        f"load {_load()}",
        flush=True,
    )
    return {"tick": tick_s, "dispatch": dispatch_s, "total": total, "enrollments": n}


if __name__ == "__main__":
    main(sys.argv[1:])

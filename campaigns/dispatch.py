"""Dispatch: claim due step executions from the outbox, perform them, record the outcome.

The exactly-once design (details and failure cases in docs/campaigns.md):

1. **Claim** a batch in its own committed transaction with one conditional UPDATE whose
   subquery selects due rows ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite the single
   UPDATE is atomic because SQLite has one writer). A claimed row is *sending* with a lease:
   ``lease_until`` (and ``next_attempt_at``) = now + lease, ``claimed_by`` = a fresh token,
   ``attempts`` + 1. Two workers racing get disjoint rows; a task delivered twice finds
   nothing left to claim.
2. **Perform** each row: re-check the enrollment is still active and the customer not opted
   out, hold back rows over the weekly frequency cap, then send. External sends carry the
   row's fixed idempotency key: the webhook's ``Idempotency-Key`` header and the email's
   Message-ID. (The tick creates a step's row only once the enrollment's previous row is
   finished, so a coupon is recorded before the email that shows it.)
3. **Record** in one transaction: lock the rows still claimed by *this* token, write each
   outcome, and create the local effects (coupon, CS task) in the same transaction — so a
   local action happens exactly once. If the worker dies between send and record, the
   lease runs out, another worker claims the row and sends again *with the same key*: the
   receiver deduplicates (at-least-once transport, exactly-once effect).
4. **Retry**: a transient failure (connection error, timeout, HTTP 5xx/408/429, SMTP 4xx)
   goes back to *pending* with exponential backoff ``base · 2^(attempts−1)`` (capped at six
   hours); after ``CAMPAIGNS_MAX_ATTEMPTS`` attempts, or on a permanent error (HTTP 4xx,
   SMTP 5xx, no email address), the row is *failed* with the error text.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import smtplib
import threading
import time
import urllib.parse
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Count, Min
from django.template import Context
from django.utils import timezone

from campaigns.emails import _template, email_message, merge_fields, render_step_email, survey_url
from campaigns.models import (
    ActionKind,
    Coupon,
    CsTask,
    Enrollment,
    Plan,
    PlanStep,
    StepExecution,
    SurveyInvitation,
    coupon_code,
)
from campaigns.selectors import MESSAGE_ACTIONS, WEEK
from customers.engagement import engine_config

log = logging.getLogger(__name__)

BATCH = 200
ROW_FIELDS = (
    "id",
    "enrollment_id",
    "step_id",
    "plan_id",
    "customer_id",
    "action",
    "status",
    "due_at",
    "attempts",
    "idempotency_key",
    "enrollment__id",
    "enrollment__status",
    "enrollment__arm",
    "enrollment__enrolled_at",
    "customer__id",
    "customer__external_id",
    "customer__email",
    "customer__name",
    "customer__company",
    "customer__email_opt_out",
    "customer__owner_id",
    "customer__score_state__last_engagement_at",
    "customer__score_state__customer_id",
    "customer__score_state__decay_sum",
)
FINAL_STATUSES = (
    StepExecution.Status.SENT,
    StepExecution.Status.HELD_OUT,
    StepExecution.Status.SUPPRESSED,
    StepExecution.Status.FAILED,
    StepExecution.Status.CANCELLED,
)
MAX_BACKOFF = timedelta(hours=6)
WEBHOOK_THREADS = 16
# Stop sending from a batch when less than this is left of its lease; the rest is released.
LEASE_MARGIN = timedelta(seconds=30)


class TransientError(Exception):
    """A failure worth retrying (network, timeout, server busy)."""


class PermanentError(Exception):
    """A failure retrying cannot fix (rejected address, bad request)."""


@dataclass
class DispatchResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    suppressed: int = 0
    cancelled: int = 0
    deferred: int = 0
    released: int = 0
    lost: int = 0  # rows whose lease ran out before recording (another worker owns them)
    seconds: float = 0.0
    by_action: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _Outcome:
    status: str
    result: dict = field(default_factory=dict)
    error: str = ""
    next_attempt_at: datetime | None = None
    performed_at: datetime | None = None
    attempt_used: bool = True  # False: the claim does not count as an attempt (deferred)


def _adapt(value: datetime | None) -> Any:
    return None if value is None else connection.ops.adapt_datetimefield_value(value)


def claim(*, now: datetime, limit: int, lease: timedelta, token: str) -> list[int]:
    """Claim up to ``limit`` due rows for ``token`` (step 1); returns their ids."""
    lock = "FOR UPDATE OF s SKIP LOCKED" if connection.vendor == "postgresql" else ""
    sql = f"""
        UPDATE campaigns_stepexecution
        SET status = 'sending', attempts = attempts + 1, lease_until = %s,
            next_attempt_at = %s, claimed_by = %s
        WHERE id IN (
            SELECT s.id FROM campaigns_stepexecution s
            WHERE s.status IN ('pending', 'sending') AND s.next_attempt_at <= %s
              AND EXISTS (SELECT 1 FROM campaigns_plan p
                          WHERE p.id = s.plan_id AND p.status = 'active')
            ORDER BY s.next_attempt_at, s.id
            LIMIT %s
            {lock}
        )
        RETURNING id
    """
    until = _adapt(now + lease)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [until, until, token, _adapt(now), limit])
        return [row[0] for row in cursor.fetchall()]


def backoff(attempts: int) -> timedelta:
    """Delay before retry number ``attempts`` (1-based): base · 2^(attempts−1), capped."""
    base = settings.CAMPAIGNS_RETRY_BASE_SECONDS
    return min(timedelta(seconds=base * 2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def _failure(row: StepExecution, exc: Exception, now: datetime) -> _Outcome:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if isinstance(exc, TransientError) and row.attempts < settings.CAMPAIGNS_MAX_ATTEMPTS:
        return _Outcome(
            status=StepExecution.Status.PENDING,
            error=f"attempt {row.attempts}: {error}",
            next_attempt_at=now + backoff(row.attempts),
        )
    if isinstance(exc, TransientError):
        error = f"gave up after {row.attempts} attempts: {error}"
    return _Outcome(status=StepExecution.Status.FAILED, error=error, performed_at=None)


# --- webhooks --------------------------------------------------------------------------------


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``: the receiver recomputes
    it and rejects old timestamps, so a captured request cannot be replayed later."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def webhook_payload(row: StepExecution) -> dict[str, Any]:
    """The JSON body: the same on every attempt (no send time), so retries are identical."""
    enrollment, customer, step = row.enrollment, row.customer, row.step
    return {
        "event": step.config.get("event") or "plan.step",
        "idempotency_key": row.idempotency_key,
        "plan": {"id": row.plan_id, "name": row.plan.name},
        "step": {"id": step.pk, "position": step.position, "action": step.action},
        "enrollment": {
            "id": enrollment.pk,
            "arm": enrollment.arm,
            "enrolled_at": enrollment.enrolled_at.isoformat(),
        },
        "customer": {
            "id": customer.pk,
            "external_id": customer.external_id,
            "email": customer.email,
            "name": customer.name,
        },
        "due_at": row.due_at.isoformat(),
    }


_local = threading.local()


def _connection(scheme: str, host: str, port: int | None, timeout: float) -> Any:
    """This thread's keep-alive connection to (scheme, host, port): no TCP (and TLS)
    handshake per webhook when a batch posts many to one receiver."""
    pool = getattr(_local, "connections", None)
    if pool is None:
        pool = _local.connections = {}
    key = (scheme, host, port)
    if key not in pool:
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        pool[key] = cls(host, port, timeout=timeout)
    return pool[key]


def _drop_connection(scheme: str, host: str, port: int | None) -> None:
    connection = getattr(_local, "connections", {}).pop((scheme, host, port), None)
    if connection is not None:
        connection.close()


def webhook_send(url: str, body: bytes, *, key: str, secret: str, timeout: float) -> dict:
    """POST ``body`` signed; returns {"status": code}. Raises Transient/PermanentError."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise PermanentError(f"bad webhook URL {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(f"bad webhook URL {url!r}: http(s) URL with a host expected")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Lifecycle-Webhooks/1",
        "Idempotency-Key": key,
        "X-Lifecycle-Signature": webhook_signature(secret, timestamp, body),
    }
    where = (parts.scheme, parts.hostname, port)
    for attempt in (1, 2):
        connection = _connection(*where, timeout)
        reused = connection.sock is not None
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(1 << 20)
            status = response.status
            if response.will_close or not response.isclosed():
                _drop_connection(*where)
            break
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            _drop_connection(*where)
            # The receiver closed an idle keep-alive connection: retry once on a new one
            # (same Idempotency-Key, so a receiver that did see it deduplicates).
            if reused and attempt == 1:
                continue
            raise TransientError(f"cannot reach {url}: {exc!r}") from exc
        except (OSError, http.client.HTTPException) as exc:
            _drop_connection(*where)
            raise TransientError(f"cannot reach {url}: {exc!r}") from exc
    if status in (408, 425, 429) or status >= 500:
        raise TransientError(f"HTTP {status} from {url}")
    if status >= 400:
        raise PermanentError(f"HTTP {status} from {url}")
    return {"status": status}


def _webhook(row: StepExecution) -> dict:
    body = json.dumps(webhook_payload(row), separators=(",", ":"), sort_keys=True).encode()
    return webhook_send(
        row.step.config["url"],
        body,
        key=row.idempotency_key,
        secret=row.step.config.get("secret") or settings.CAMPAIGNS_WEBHOOK_SECRET,
        timeout=settings.CAMPAIGNS_WEBHOOK_TIMEOUT,
    )


# --- email -----------------------------------------------------------------------------------


def _send_email(message: Any) -> None:
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        if all(400 <= code < 500 for code in codes):
            raise TransientError(f"recipient deferred: {exc.recipients}") from exc
        raise PermanentError(f"recipient refused: {exc.recipients}") from exc
    except smtplib.SMTPResponseException as exc:
        if 400 <= exc.smtp_code < 500:
            raise TransientError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
        raise PermanentError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}") from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"SMTP: {exc}") from exc


# --- the loop --------------------------------------------------------------------------------


def dispatch_due(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH,
    max_rows: int | None = None,
    lease_seconds: int | None = None,
    time_budget: float | None = None,
) -> DispatchResult:
    """Claim, perform and record due executions in batches until none is due (or
    ``max_rows`` / ``time_budget`` seconds is reached). Safe to run in many workers at once.

    ``now`` fixes the clock (tests); by default each batch reads the current time.
    """
    started = time.monotonic()
    result = DispatchResult()
    lease = timedelta(seconds=lease_seconds or settings.CAMPAIGNS_LEASE_SECONDS)
    config = engine_config()
    email_connection = get_connection()
    email_connection.open()
    pool = ThreadPoolExecutor(max_workers=WEBHOOK_THREADS, thread_name_prefix="webhook")
    try:
        while True:
            if max_rows is not None and result.claimed >= max_rows:
                break
            if time_budget is not None and time.monotonic() - started > time_budget:
                break
            batch_now = now or timezone.now()
            limit = batch_size if max_rows is None else min(batch_size, max_rows - result.claimed)
            token = uuid.uuid4().hex
            ids = claim(now=batch_now, limit=limit, lease=lease, token=token)
            if not ids:
                break
            result.claimed += len(ids)
            _dispatch_batch(
                ids,
                token=token,
                now=batch_now,
                # Stop early enough to record before the lease runs out.
                lease_until=batch_now + lease - min(LEASE_MARGIN, lease / 4),
                fixed_clock=now is not None,
                result=result,
                config=config,
                email_connection=email_connection,
                pool=pool,
            )
    finally:
        email_connection.close()
        pool.shutdown(wait=True)
    result.seconds = time.monotonic() - started
    return result


def _sent_this_week(customer_ids: list[int], now: datetime) -> dict[int, tuple[int, datetime]]:
    rows = (
        StepExecution.objects.filter(
            customer_id__in=customer_ids,
            status=StepExecution.Status.SENT,
            action__in=MESSAGE_ACTIONS,
            performed_at__gt=now - WEEK,
        )
        .order_by()
        .values("customer_id")
        .annotate(n=Count("pk"), first=Min("performed_at"))
    )
    return {row["customer_id"]: (row["n"], row["first"]) for row in rows}


def _survey_links(rows: list[StepExecution]) -> dict[int, str]:
    """Survey links of a batch's survey rows: invitations made (once per execution, committed
    before sending so the link works; a retry reuses the same one) in two queries."""
    surveys = [
        r
        for r in rows
        if r.action == ActionKind.SURVEY
        and r.customer is not None
        and r.enrollment.status == Enrollment.Status.ACTIVE
    ]
    if not surveys:
        return {}
    SurveyInvitation.objects.bulk_create(
        [
            SurveyInvitation(
                execution=r,
                customer_id=r.customer_id,
                enrollment_id=r.enrollment_id,
                question=r.step.config.get("question", "")[:300],
            )
            for r in surveys
        ],
        ignore_conflicts=True,
    )
    tokens = SurveyInvitation.objects.filter(execution_id__in=[r.pk for r in surveys])
    return {pk: survey_url(token) for pk, token in tokens.values_list("execution_id", "token")}


def _latest_coupons(enrollment_ids: list[int]) -> dict[int, Coupon]:
    latest: dict[int, Coupon] = {}
    for coupon in Coupon.objects.filter(enrollment_id__in=enrollment_ids).order_by("created_at"):
        latest[coupon.enrollment_id] = coupon
    return latest


def _dispatch_batch(
    ids: list[int],
    *,
    token: str,
    now: datetime,
    lease_until: datetime,
    fixed_clock: bool,
    result: DispatchResult,
    config: Any,
    email_connection: Any,
    pool: ThreadPoolExecutor,
) -> None:
    rows = list(
        StepExecution.objects.filter(pk__in=ids, claimed_by=token)
        .select_related("enrollment", "customer__score_state")
        # Only what sending reads: loading whole rows (a dozen timestamps each) was a third
        # of the dispatch's CPU time.
        .only(*ROW_FIELDS)
        .order_by("id")
    )
    # A batch holds a handful of plans and steps: load each once, not once per row.
    plans = Plan.objects.in_bulk({r.plan_id for r in rows})
    steps = PlanStep.objects.in_bulk({r.step_id for r in rows})
    for row in rows:
        row.plan = plans[row.plan_id]
        row.step = steps[row.step_id]
    customer_ids = [r.customer_id for r in rows if r.customer_id]
    survey_links = _survey_links(rows)
    week = _sent_this_week(customer_ids, now)
    coupons = _latest_coupons([r.enrollment_id for r in rows if r.action == ActionKind.EMAIL])
    outcomes: dict[int, _Outcome] = {}
    webhooks: list[tuple[StepExecution, Any]] = []
    sent_in_batch: dict[int, int] = defaultdict(int)

    def clock() -> datetime:
        return now if fixed_clock else timezone.now()

    for row in rows:
        enrollment, customer, plan = row.enrollment, row.customer, row.plan
        if row.attempts > settings.CAMPAIGNS_MAX_ATTEMPTS:
            outcomes[row.pk] = _Outcome(
                status=StepExecution.Status.FAILED,
                error=f"claimed {row.attempts} times without an outcome (worker lost?)",
            )
            continue
        if enrollment.status != Enrollment.Status.ACTIVE or customer is None:
            outcomes[row.pk] = _Outcome(
                status=StepExecution.Status.CANCELLED,
                error=f"enrollment {enrollment.get_status_display().lower()}",
            )
            continue
        if plan.status != Plan.Status.ACTIVE:
            outcomes[row.pk] = _Outcome(
                status=StepExecution.Status.PENDING, next_attempt_at=now, attempt_used=False
            )
            continue
        if row.action in (ActionKind.EMAIL, ActionKind.SURVEY):
            if customer.email_opt_out:
                outcomes[row.pk] = _Outcome(
                    status=StepExecution.Status.SUPPRESSED, error="customer opted out of email"
                )
                continue
            if not customer.email:
                outcomes[row.pk] = _Outcome(
                    status=StepExecution.Status.SUPPRESSED, error="customer has no email address"
                )
                continue
        if row.action in MESSAGE_ACTIONS:
            count, first = week.get(customer.pk, (0, None))
            if count + sent_in_batch[customer.pk] >= plan.frequency_cap_per_week:
                # Held back, not dropped: due again when the oldest counted send is a week old.
                outcomes[row.pk] = _Outcome(
                    status=StepExecution.Status.PENDING,
                    next_attempt_at=(first + WEEK) if first else now + timedelta(hours=1),
                    error="weekly frequency cap reached; deferred",
                    attempt_used=False,
                )
                result.deferred += 1
                continue
            sent_in_batch[customer.pk] += 1
        if row.action in (ActionKind.COUPON, ActionKind.CS_TASK):
            # Local effects are created in the recording transaction (exactly once).
            outcomes[row.pk] = _Outcome(status=StepExecution.Status.SENT, performed_at=now)
            continue
        if clock() > lease_until:
            break
        if row.action == ActionKind.WEBHOOK:
            # Sent by the pool's threads while this loop renders and sends emails.
            webhooks.append((row, pool.submit(_webhook, row)))
            continue
        try:
            link = survey_links.get(row.pk, "")
            rendered = render_step_email(
                row.step,
                customer,
                now=now,
                coupon=coupons.get(enrollment.pk),
                config=config,
                survey_link=link,
            )
            message = email_message(
                rendered, idempotency_key=row.idempotency_key, connection=email_connection
            )
            _send_email(message)
            outcomes[row.pk] = _Outcome(
                status=StepExecution.Status.SENT,
                performed_at=clock(),
                result={"message_id": message.extra_headers["Message-ID"], "to": rendered.to},
            )
        except (TransientError, PermanentError) as exc:
            outcomes[row.pk] = _failure(row, exc, clock())

    for row, future in webhooks:
        try:
            response = future.result()
            outcomes[row.pk] = _Outcome(
                status=StepExecution.Status.SENT, performed_at=clock(), result=response
            )
        except (TransientError, PermanentError) as exc:
            outcomes[row.pk] = _failure(row, exc, clock())

    # Rows not reached (lease nearly over) go back to the queue without using an attempt.
    for row in rows:
        if row.pk not in outcomes:
            outcomes[row.pk] = _Outcome(
                status=StepExecution.Status.PENDING, next_attempt_at=now, attempt_used=False
            )
            result.released += 1
    _record(rows, outcomes, token=token, now=now, result=result, config=config)


def _record(
    rows: list[StepExecution],
    outcomes: dict[int, _Outcome],
    *,
    token: str,
    now: datetime,
    result: DispatchResult,
    config: Any,
) -> None:
    """Write outcomes and local effects in one transaction, only for rows this token still
    owns (step 3 of the module docstring)."""
    json_param = "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"
    sql = f"""
        UPDATE campaigns_stepexecution
        SET status = %s, performed_at = %s, result = {json_param}, error = %s,
            next_attempt_at = COALESCE(%s, next_attempt_at), lease_until = NULL,
            attempts = attempts - %s
        WHERE id = %s
    """
    with transaction.atomic():
        owned = set(
            StepExecution.objects.select_for_update()
            .filter(pk__in=list(outcomes), claimed_by=token, status=StepExecution.Status.SENDING)
            .values_list("pk", flat=True)
        )
        result.lost += len(outcomes) - len(owned)
        params = []
        coupons: list[Coupon] = []
        tasks: list[CsTask] = []
        for row in rows:
            if row.pk not in owned:
                continue
            outcome = outcomes[row.pk]
            if outcome.status == StepExecution.Status.SENT and row.action == ActionKind.COUPON:
                coupon = _coupon_for(row, now)
                coupons.append(coupon)
                outcome.result = {"code": coupon.code}
            elif outcome.status == StepExecution.Status.SENT and row.action == ActionKind.CS_TASK:
                task = _cs_task_for(row, now, config)
                tasks.append(task)
                outcome.result = {"owner_id": task.owner_id}
            params.append(
                [
                    outcome.status,
                    _adapt(outcome.performed_at),
                    json.dumps(outcome.result, default=str),
                    outcome.error,
                    _adapt(outcome.next_attempt_at),
                    0 if outcome.attempt_used else 1,
                    row.pk,
                ]
            )
            _count(result, row, outcome)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql" and params:
                # One statement for the whole batch instead of one UPDATE per row.
                columns = list(zip(*params, strict=True))
                cursor.execute(BATCH_UPDATE_PG, [list(column) for column in columns])
            else:
                cursor.executemany(sql, params)
        Coupon.objects.bulk_create(coupons)
        CsTask.objects.bulk_create(tasks)


BATCH_UPDATE_PG = """
    UPDATE campaigns_stepexecution x
    SET status = v.status, performed_at = v.performed_at, result = v.result::jsonb,
        error = v.error, next_attempt_at = COALESCE(v.next_attempt_at, x.next_attempt_at),
        lease_until = NULL, attempts = x.attempts - v.back
    FROM unnest(%s::text[], %s::timestamptz[], %s::text[], %s::text[], %s::timestamptz[],
                %s::int[], %s::bigint[])
         AS v(status, performed_at, result, error, next_attempt_at, back, id)
    WHERE x.id = v.id
"""


def _count(result: DispatchResult, row: StepExecution, outcome: _Outcome) -> None:
    status = outcome.status
    if status == StepExecution.Status.SENT:
        result.sent += 1
        result.by_action[row.action] += 1
    elif status == StepExecution.Status.FAILED:
        result.failed += 1
    elif status == StepExecution.Status.SUPPRESSED:
        result.suppressed += 1
    elif status == StepExecution.Status.CANCELLED:
        result.cancelled += 1
    elif status == StepExecution.Status.PENDING and outcome.attempt_used:
        result.retried += 1


def _coupon_for(row: StepExecution, now: datetime) -> Coupon:
    cfg = row.step.config
    value = Decimal(str(cfg.get("value", 10)))
    return Coupon(
        code=coupon_code(),
        customer_id=row.customer_id,
        enrollment_id=row.enrollment_id,
        execution=row,
        kind=cfg.get("kind", Coupon.Kind.PERCENT),
        value=value,
        cost=Decimal(str(cfg.get("cost", 0))),
        expires_at=now + timedelta(days=int(cfg.get("expires_days", 30))),
    )


def _cs_task_for(row: StepExecution, now: datetime, config: Any) -> CsTask:
    cfg = row.step.config
    fields = merge_fields(row.customer, now=now, config=config)
    context = Context(fields, autoescape=False)
    return CsTask(
        customer_id=row.customer_id,
        owner_id=row.customer.owner_id,
        enrollment_id=row.enrollment_id,
        execution=row,
        title=_template(cfg.get("title", "Call {{ name }}")).render(context)[:200],
        note=_template(cfg.get("note", "")).render(context),
        due_at=now + timedelta(days=int(cfg.get("due_days", 3))),
    )

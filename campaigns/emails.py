"""Plan emails: merge fields, text and HTML parts, unsubscribe and survey links, Message-ID.

Step texts are Django templates written by marketers. Merge fields (context variables):
``name``, ``first_name``, ``email``, ``company``, ``score`` (0–100, live),
``days_since_last_action``, ``coupon_code``, ``coupon_value``, ``coupon_expires`` (the
enrollment's latest coupon, empty when none), ``survey_url``, ``survey_question`` (survey
steps), ``unsubscribe_url``.

The text part renders with autoescape off, the HTML part with autoescape on; when a step
has no HTML body the HTML part is the escaped text with line breaks. Every message carries
a ``List-Unsubscribe`` header (RFC 2369, one-click per RFC 8058) and a Message-ID derived
from the step execution's idempotency key, so a retried send is recognizably the same
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, linebreaks

from campaigns.models import ActionKind, Coupon, PlanStep
from customers.engagement import EngineConfig, engine_config
from customers.models import Customer

UNSUBSCRIBE_SALT = "campaigns.unsubscribe"
SURVEY_SALT = "campaigns.survey"
# The frame around every HTML part (str.format: the body is already HTML, the link escaped).
HTML_LAYOUT = (
    '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5">'
    "{body}"
    '<hr><p style="font-size: 12px; color: #666">'
    'You receive this because you are a customer. <a href="{unsubscribe_url}">'
    "Unsubscribe</a>.</p></body></html>"
)


@lru_cache(maxsize=512)
def _template(source: str) -> Template:
    # Compiling is most of a render's cost; a plan has a handful of distinct texts.
    return Template(source)


def unsubscribe_token(customer_id: int) -> str:
    """A signed, non-expiring token naming the customer (links in old emails keep working)."""
    return signing.dumps(customer_id, salt=UNSUBSCRIBE_SALT)


def unsubscribe_customer_id(token: str) -> int:
    """The customer id of a token; raises ``signing.BadSignature`` when forged or damaged."""
    value = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    if not isinstance(value, int):
        raise signing.BadSignature("not a customer token")
    return value


@lru_cache(maxsize=4)
def _url_pattern(name: str, site_url: str) -> str:
    # reverse() costs about a millisecond; resolve once and fill the token in per message.
    return site_url + reverse(name, args=["TOKEN"])


def unsubscribe_url(customer_id: int) -> str:
    pattern = _url_pattern("campaigns-unsubscribe", settings.SITE_URL)
    return pattern.replace("TOKEN", unsubscribe_token(customer_id))


def survey_link_token(invitation_token: str) -> str:
    """The survey link's token: the invitation's random token, signed (tamper-evident)."""
    return signing.dumps(invitation_token, salt=SURVEY_SALT)


def survey_invitation_token(link_token: str) -> str:
    value = signing.loads(link_token, salt=SURVEY_SALT)
    if not isinstance(value, str):
        raise signing.BadSignature("not a survey token")
    return value


def survey_url(invitation_token: str) -> str:
    pattern = _url_pattern("campaigns-survey", settings.SITE_URL)
    return pattern.replace("TOKEN", survey_link_token(invitation_token))


def message_id(idempotency_key: str) -> str:
    """The Message-ID of every attempt of one step execution (RFC 5322 msg-id)."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip("> ") or "lifecycle.local"
    return f"<{idempotency_key}@{domain}>"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    to: str
    headers: dict[str, str]


def merge_fields(
    customer: Customer,
    *,
    now: datetime,
    coupon: Coupon | None = None,
    config: EngineConfig | None = None,
    survey_link: str = "",
    survey_question: str = "",
) -> dict[str, Any]:
    """The merge-field values for one customer at ``now`` (see module docstring)."""
    config = config or engine_config()
    state = getattr(customer, "score_state", None)
    last = state.last_engagement_at if state else None
    days = (now - last).total_seconds() / 86400 if last else None
    score = float(config.score(state.decay_sum, now.timestamp())) if state else 0.0
    name = customer.name or customer.email or customer.external_id
    return {
        "name": name,
        "first_name": name.split()[0] if name else "",
        "email": customer.email,
        "company": customer.company,
        "score": round(score),
        "days_since_last_action": int(days) if days is not None else "",
        "coupon_code": coupon.code if coupon else "",
        "coupon_value": coupon.display_value if coupon else "",
        "coupon_expires": coupon.expires_at.date().isoformat() if coupon else "",
        "survey_url": survey_link,
        "survey_question": survey_question,
        "unsubscribe_url": unsubscribe_url(customer.pk),
    }


def render_step_email(
    step: PlanStep,
    customer: Customer,
    *,
    now: datetime | None = None,
    coupon: Coupon | None = None,
    config: EngineConfig | None = None,
    survey_link: str = "",
) -> RenderedEmail:
    """The email of an email or survey step for a real customer (what it would send now).

    Survey steps get a default body naming the question and the link when they set none.
    """
    if step.action not in (ActionKind.EMAIL, ActionKind.SURVEY):
        raise ValueError(f"A {step.get_action_display()} step sends no email.")
    now = now or timezone.now()
    cfg = step.config
    question = cfg.get("question", "")
    fields = merge_fields(
        customer,
        now=now,
        coupon=coupon,
        config=config,
        survey_link=survey_link,
        survey_question=question,
    )
    body_text = cfg.get("body_text") or ""
    if step.action == ActionKind.SURVEY and not body_text:
        body_text = "Hi {{ first_name }},\n\n{{ survey_question }}\n\nAnswer here: {{ survey_url }}"
    subject = _template(cfg.get("subject", "")).render(Context(fields, autoescape=False))
    body = _template(body_text).render(Context(fields, autoescape=False))
    text = f"{body}\n\n--\nUnsubscribe: {fields['unsubscribe_url']}\n"
    if cfg.get("body_html"):
        body_html = _template(cfg["body_html"]).render(Context(fields))
    else:
        body_html = linebreaks(escape(body))
    html = HTML_LAYOUT.format(body=body_html, unsubscribe_url=escape(fields["unsubscribe_url"]))
    return RenderedEmail(
        subject=" ".join(subject.split()),  # no newlines in a header
        text=text,
        html=html,
        to=customer.email,
        headers={
            "List-Unsubscribe": f"<{fields['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def email_message(
    rendered: RenderedEmail, *, idempotency_key: str, connection: Any = None
) -> EmailMultiAlternatives:
    """A ready-to-send message with the deterministic Message-ID of the execution."""
    message = EmailMultiAlternatives(
        subject=rendered.subject,
        body=rendered.text,
        to=[rendered.to],
        headers={
            **rendered.headers,
            "Message-ID": message_id(idempotency_key),
            "X-Lifecycle-Idempotency-Key": idempotency_key,
        },
        connection=connection,
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def email_preview(
    step: PlanStep, customer: Customer, *, now: datetime | None = None
) -> RenderedEmail:
    """The step's email for ``customer`` as the builder shows it: real merge fields, the
    customer's latest coupon if any (else a sample code when an earlier step makes one)."""
    now = now or timezone.now()
    coupon = Coupon.objects.filter(customer=customer).order_by("-created_at").first()
    if (
        coupon is None
        and step.plan.steps.filter(action=ActionKind.COUPON, position__lt=step.position).exists()
    ):
        earlier = step.plan.steps.filter(
            action=ActionKind.COUPON, position__lt=step.position
        ).last()
        coupon = Coupon(
            code="SAMPLE2345",
            kind=earlier.config.get("kind", Coupon.Kind.PERCENT),
            value=Decimal(str(earlier.config.get("value", 10))),
            expires_at=now + timedelta(days=earlier.config.get("expires_days", 30)),
        )
    link = settings.SITE_URL + "/s/preview/" if step.action == ActionKind.SURVEY else ""
    return render_step_email(step, customer, now=now, coupon=coupon, survey_link=link)

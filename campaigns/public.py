"""Public pages reached from plan emails (no login): unsubscribe and survey answers.

Both are authenticated by a signed token in the URL (``campaigns.emails``), not a session.
Unsubscribe accepts a POST without a CSRF token on purpose: RFC 8058 one-click unsubscribe
is a POST from the mail client, and the signed token is the secret that authorises it.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from campaigns.emails import survey_invitation_token, unsubscribe_customer_id
from campaigns.models import SurveyInvitation
from campaigns.services import survey_answer_record
from customers.models import Customer


@login_not_required
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks for confirmation; POST sets ``email_opt_out`` (idempotent)."""
    try:
        customer_id = unsubscribe_customer_id(token)
    except signing.BadSignature as exc:
        raise Http404("This unsubscribe link is not valid.") from exc
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise Http404("This unsubscribe link is not valid.")
    done = False
    if request.method == "POST":
        Customer.objects.filter(pk=customer.pk).update(
            email_opt_out=True, updated_at=timezone.now()
        )
        done = True
    return render(
        request, "campaigns_public/unsubscribe.html", {"customer": customer, "done": done}
    )


@login_not_required
@require_http_methods(["GET", "POST"])
def survey(request: HttpRequest, token: str) -> HttpResponse:
    """Show the survey question; POST records the answer as a ``survey_response`` touchpoint."""
    try:
        invitation_token = survey_invitation_token(token)
    except signing.BadSignature as exc:
        raise Http404("This survey link is not valid.") from exc
    invitation = SurveyInvitation.objects.filter(token=invitation_token).first()
    if invitation is None or invitation.customer_id is None:
        raise Http404("This survey link is not valid.")
    error = ""
    if request.method == "POST" and invitation.answered_at is None:
        rating_text = request.POST.get("rating", "").strip()
        answer = request.POST.get("answer", "").strip()[:4000]
        rating = int(rating_text) if rating_text.isdigit() and int(rating_text) <= 10 else None
        if rating is None and not answer:
            error = "Choose a rating from 0 to 10 or write an answer."
        else:
            with transaction.atomic():
                survey_answer_record(invitation=invitation, rating=rating, answer=answer)
            invitation.refresh_from_db()
    return render(
        request,
        "campaigns_public/survey.html",
        {"invitation": invitation, "error": error, "ratings": range(11)},
        status=400 if error else 200,
    )

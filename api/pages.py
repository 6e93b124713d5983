"""The admin page where API tokens are issued (secret shown once) and revoked."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from api.models import ApiToken
from api.tokens import token_issue, token_revoke
from customers.roles import Role, role_required


class TokenForm(forms.Form):
    name = forms.CharField(
        label="Integration",
        max_length=100,
        help_text="Who uses this token, e.g. 'CRM sync' or 'Data warehouse'.",
    )
    role = forms.ChoiceField(
        choices=[(role.value, role.value) for role in Role],
        initial=Role.MARKETER.value,
        help_text="Marketer: read, record touchpoints. Customer success: also create and "
        "edit customers. Admin: also touchpoint types.",
    )


@role_required(Role.ADMIN)
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST or None)
    issued = None
    if request.method == "POST" and form.is_valid():
        issued = token_issue(
            name=form.cleaned_data["name"], role=form.cleaned_data["role"], created_by=request.user
        )
        form = TokenForm()
    tokens = ApiToken.objects.select_related("created_by", "revoked_by")
    return render(request, "api/tokens.html", {"form": form, "issued": issued, "tokens": tokens})


@require_POST
@role_required(Role.ADMIN)
def token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk)
    if token_revoke(token=token, revoked_by=request.user):
        messages.success(request, f"Token '{token.name}' revoked: it no longer works.")
    else:
        messages.info(request, f"Token '{token.name}' was already revoked.")
    return redirect("api-tokens")

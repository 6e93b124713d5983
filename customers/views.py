from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from customers.forms import EngagementSettingsForm
from customers.models import Customer, Engagement, EngagementSettings, Stage, TouchpointType
from customers.roles import Role, role_required
from customers.services import engagement_settings_save


def home(request: HttpRequest) -> HttpResponse:
    by_stage = dict(
        Engagement.objects.values_list("stage").annotate(n=Count("pk")).values_list("stage", "n")
    )
    stages = [(label, by_stage.get(value, 0)) for value, label in Stage.choices]
    return render(
        request,
        "customers/home.html",
        {"customer_count": Customer.objects.count(), "stages": stages},
    )


@role_required(Role.ADMIN)
def engagement_settings(request: HttpRequest) -> HttpResponse:
    current = EngagementSettings.load()
    form = EngagementSettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        mode = engagement_settings_save(
            settings=form.save(commit=False), changed=form.changed_data, user=request.user
        )
        note = {"full": " A full recompute has started.", "scores": " A rescore has started."}
        messages.success(request, "Engagement settings saved." + note.get(mode or "", ""))
        return redirect("engagement-settings")
    types = TouchpointType.objects.all()
    return render(request, "customers/settings.html", {"form": form, "types": types})

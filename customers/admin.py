from django.contrib import admin

from customers.models import (
    Customer,
    Engagement,
    EngagementSettings,
    JobRun,
    ModelFit,
    Touchpoint,
    TouchpointType,
)
from customers.services import engagement_settings_save, touchpoint_type_save


class EngagementInline(admin.StackedInline):
    model = Engagement
    can_delete = False
    readonly_fields = [f.name for f in Engagement._meta.fields]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "name",
        "email",
        "company",
        "plan",
        "region",
        "spend_tier",
        "renewal_date",
        "owner",
    ]
    list_filter = ["spend_tier", "region", "plan", "email_opt_out", "is_identified"]
    search_fields = ["external_id", "email", "name", "company"]
    raw_id_fields = ["owner"]
    inlines = [EngagementInline]
    show_full_result_count = False  # COUNT(*) over a million rows on every page is wasted work


@admin.register(TouchpointType)
class TouchpointTypeAdmin(admin.ModelAdmin):
    list_display = ["key", "label", "channel", "weight", "counts_as_engagement", "is_active"]
    list_editable = ["weight", "counts_as_engagement", "is_active"]
    list_filter = ["channel", "counts_as_engagement", "is_active"]

    def save_model(self, request, obj, form, change):
        touchpoint_type_save(touchpoint_type=obj, changed=form.changed_data, user=request.user)


@admin.register(Touchpoint)
class TouchpointAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "type", "occurred_at", "value", "source"]
    list_filter = ["type__channel", "source"]
    raw_id_fields = ["customer"]
    list_select_related = ["customer", "type"]
    show_full_result_count = False
    date_hierarchy = "occurred_at"


@admin.register(EngagementSettings)
class EngagementSettingsAdmin(admin.ModelAdmin):
    readonly_fields = ["decay_epoch", "updated_at", "updated_by"]

    def has_add_permission(self, request):
        return not EngagementSettings.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        engagement_settings_save(settings=obj, changed=form.changed_data, user=request.user)


@admin.register(JobRun)
class JobRunAdmin(admin.ModelAdmin):
    list_display = [
        "kind",
        "status",
        "started_at",
        "finished_at",
        "customers_processed",
        "changes_made",
        "chunks_done",
        "chunks_total",
        "triggered_by",
    ]
    list_filter = ["kind", "status"]
    readonly_fields = [f.name for f in JobRun._meta.fields]


@admin.register(ModelFit)
class ModelFitAdmin(admin.ModelAdmin):
    list_display = ["as_of", "r", "alpha", "a", "b", "customers", "converged", "seconds"]
    readonly_fields = [f.name for f in ModelFit._meta.fields]

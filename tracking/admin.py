from django.contrib import admin

from tracking.models import (
    CustomerAlias,
    EventMapping,
    RejectedMessage,
    Source,
    UnmappedEvent,
    WriteKey,
)


class WriteKeyInline(admin.TabularInline):
    model = WriteKey
    extra = 0
    can_delete = False
    fields = ["prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "created_by", "last_used_at"]

    def has_add_permission(self, request, obj=None):
        return False  # keys are created on the tracking settings screen, which shows them once


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at", "created_by"]
    readonly_fields = ["slug", "created_at", "created_by"]
    inlines = [WriteKeyInline]

    def has_add_permission(self, request):
        return False


@admin.register(EventMapping)
class EventMappingAdmin(admin.ModelAdmin):
    list_display = ["event_name", "type", "updated_at", "updated_by"]
    search_fields = ["event_name"]
    readonly_fields = ["updated_by"]


@admin.register(UnmappedEvent)
class UnmappedEventAdmin(admin.ModelAdmin):
    list_display = ["event_name", "kind", "customer", "occurred_at", "source"]
    list_filter = ["kind", "source"]
    search_fields = ["event_name", "message_id"]
    raw_id_fields = ["customer"]
    show_full_result_count = False


@admin.register(RejectedMessage)
class RejectedMessageAdmin(admin.ModelAdmin):
    list_display = ["received_at", "source", "endpoint", "index", "message_id", "error"]
    list_filter = ["source", "endpoint"]
    readonly_fields = [f.name for f in RejectedMessage._meta.fields]


@admin.register(CustomerAlias)
class CustomerAliasAdmin(admin.ModelAdmin):
    list_display = ["alias", "customer", "created_at"]
    search_fields = ["alias"]
    raw_id_fields = ["customer"]

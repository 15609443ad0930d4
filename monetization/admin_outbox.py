"""Admin for outbound events: endpoints (superusers only), the delivery log with replay, the outbox."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from monetization.errors import DomainError, staff_message
from monetization.models import EventDelivery, EventEndpoint, OutboxEvent
from monetization.outbox.delivery import event_envelope
from monetization.services.event_endpoints import endpoint_secret_generate, event_deliveries_replay


class SuperuserOnly:
    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


@admin.register(EventEndpoint)
class EventEndpointAdmin(SuperuserOnly, admin.ModelAdmin):
    list_display = ("id", "display_url", "enabled", "event_types", "failing_since", "disabled_at")
    list_filter = ("enabled",)
    fields = (
        "url",
        "description",
        "event_types",
        "enabled",
        "secret",
        "previous_secret",
        "previous_secret_expires_at",
        "failing_since",
        "disabled_at",
        "disabled_reason",
    )
    readonly_fields = ("failing_since", "disabled_at", "disabled_reason")

    def get_changeform_initial_data(self, request):
        return {"secret": endpoint_secret_generate(), "event_types": []}

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EventDelivery)
class EventDeliveryAdmin(SuperuserOnly, admin.ModelAdmin):
    list_display = ("id", "endpoint", "event", "status", "attempts", "last_status_code", "next_attempt_at")
    list_filter = ("status", "endpoint")
    list_select_related = ("endpoint", "event")
    show_full_result_count = False
    raw_id_fields = ("event",)
    actions = ["replay"]
    readonly_fields = [f.name for f in EventDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request):
        return request.user.is_superuser

    @admin.action(description="Replay the selected deliveries", permissions=["replay"])
    def replay(self, request, queryset):
        try:
            done = event_deliveries_replay(
                user=request.user,
                delivery_ids=list(queryset.values_list("pk", flat=True)[:1000]),
                reason=f"replayed from the admin by {request.user}",
            )
        except DomainError as exc:
            self.message_user(request, staff_message(exc), messages.ERROR)
            return
        self.message_user(request, f"{done} deliveries queued again.", messages.SUCCESS)


@admin.register(OutboxEvent)
class OutboxEventAdmin(SuperuserOnly, admin.ModelAdmin):
    list_display = ("id", "type", "customer_external_id", "occurred_at", "audit_event_id")
    list_filter = ("type",)
    search_fields = ("=customer_external_id", "=event_id")
    show_full_result_count = False
    fields = ("pretty",)
    readonly_fields = ("pretty",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Event as delivered")
    def pretty(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(event_envelope(obj), indent=2))

"""Admin for the webhook inbox: find an event, read its error, replay it (audited)."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.timesince import timesince

from monetization import clock
from monetization.changelist import LargeTableAdmin
from monetization.errors import DomainError
from monetization.models import WebhookEvent
from monetization.webhook_queue import webhook_event_replay


@admin.register(WebhookEvent)
class WebhookEventAdmin(LargeTableAdmin):
    list_display = ("id", "provider", "event_type", "event_id", "status", "attempts", "age")
    list_filter = ("status", "provider")
    exact_search_fields = ("event_id", "subscription_ref")
    date_hierarchy = None
    ordering = ("-id",)
    actions = ["replay"]
    fields = (
        "provider",
        "event_id",
        "event_type",
        "subscription_ref",
        "status",
        "attempts",
        "age",
        "last_attempt_at",
        "next_attempt_at",
        "waiting_for",
        "last_error",
        "note",
        "occurred_at",
        "received_at",
        "applied_at",
        "pretty_payload",
        "raw_body",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_replay_permission(self, request):
        return request.user.has_perm("monetization.replay_webhookevent")

    @admin.display(description="Age")
    def age(self, obj):
        """How long an unfinished event (waiting, retrying) has been in the inbox."""
        if obj.status not in WebhookEvent.UNFINISHED:
            return "-"
        return timesince(obj.received_at, clock.now())

    @admin.display(description="Payload")
    def pretty_payload(self, obj):
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(obj.payload, indent=2)[:20000])

    @admin.action(description="Replay the selected failed events", permissions=["replay"])
    def replay(self, request, queryset):
        done = refused = 0
        for event in queryset[:500]:
            try:
                webhook_event_replay(
                    event=event, user=request.user, reason=f"replayed from the admin by {request.user}"
                )
                done += 1
            except DomainError:
                refused += 1
        if done:
            self.message_user(request, f"{done} event(s) queued for replay.", messages.SUCCESS)
        if refused:
            self.message_user(
                request, f"{refused} event(s) were not failed or pending and were left alone.", messages.WARNING
            )

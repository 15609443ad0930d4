"""Win-back admin: the rules (superusers edit them, audited) with how many customers each targeted and won
back, and the targets themselves (read-only: the scheduled run writes them)."""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, Q

from monetization.services.audit import snapshot
from subscriptions.models import WinBackRule, WinBackTarget
from subscriptions.services import win_back


@admin.register(WinBackRule)
class WinBackRuleAdmin(admin.ModelAdmin):
    list_display = ("key", "reason", "lapsed_days", "window_days", "targeted", "converted", "conversion")
    list_filter = ("reason", "is_active")
    search_fields = ("key", "name")
    readonly_fields = ("created_at",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _targeted=Count("targets"), _converted=Count("targets", filter=Q(targets__converted_at__isnull=False))
            )
        )

    @admin.display(description="targeted", ordering="_targeted")
    def targeted(self, obj):
        return obj._targeted

    @admin.display(description="won back", ordering="_converted")
    def converted(self, obj):
        return obj._converted

    @admin.display(description="conversion")
    def conversion(self, obj):
        return f"{100 * obj._converted / obj._targeted:.1f}%" if obj._targeted else "-"

    def save_model(self, request, obj, form, change):
        before = snapshot(WinBackRule.objects.get(pk=obj.pk), win_back.RULE_FIELDS) if change else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            win_back.win_back_rule_saved(actor=request.user, rule=obj, created=not change, before=before)


@admin.register(WinBackTarget)
class WinBackTargetAdmin(admin.ModelAdmin):
    list_display = ("rule", "customer_external_id", "targeted_at", "window_ends_at", "converted_at")
    list_filter = ("rule",)
    list_select_related = ("rule", "customer")
    search_fields = ("=customer__external_id",)
    show_full_result_count = False

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_external_id(self, obj):
        return obj.customer.external_id

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

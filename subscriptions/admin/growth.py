"""Growth admin: price experiments (arms, start/stop), promo codes, and who redeemed which code.

Experiments and promo codes change what customers pay: creating and editing them takes the add/change
permissions (superusers by default); every role may look, and Support reads the redemptions.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count

from monetization.errors import DomainError
from monetization.services.audit import snapshot
from subscriptions.models import Experiment, ExperimentArm, PromoCode, PromoRedemption
from subscriptions.services import experiments, promo_codes

from .experiment_readout import readout_table


class ExperimentArmInline(admin.TabularInline):
    model = ExperimentArm
    extra = 0
    fields = ("key", "weight", "price", "paywall", "offering")
    raw_id_fields = ("price",)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "state", "arm_count", "exposure_count", "started_at", "stopped_at")
    list_filter = ("state",)
    search_fields = ("key", "name")
    readonly_fields = ("state", "started_at", "stopped_at", "created_at", "readout")
    inlines = (ExperimentArmInline,)
    actions = ("start_experiments", "stop_experiments")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_arms=Count("arms", distinct=True), _exposures=Count("exposures", distinct=True))
        )

    @admin.display(description="arms", ordering="_arms")
    def arm_count(self, obj):
        return obj._arms

    @admin.display(description="exposed customers", ordering="_exposures")
    def exposure_count(self, obj):
        return obj._exposures

    @admin.display(description="readout")
    def readout(self, obj):
        return readout_table(obj)

    def save_model(self, request, obj, form, change):
        before = snapshot(Experiment.objects.get(pk=obj.pk), experiments.AUDITED_FIELDS) if change else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            experiments.experiment_saved(actor=request.user, experiment=obj, created=not change, before=before)

    def _act(self, request, queryset, service, verb):
        done = 0
        for experiment in queryset:
            try:
                service(actor=request.user, experiment_id=experiment.pk, reason=f"{verb} in the admin")
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{experiment}: {exc.detail}", messages.ERROR)
        if done:
            self.message_user(request, f"{verb.capitalize()} {done} experiment(s).", messages.SUCCESS)

    @admin.action(description="Start the selected experiments", permissions=["change"])
    def start_experiments(self, request, queryset):
        self._act(request, queryset, experiments.experiment_start, "started")

    @admin.action(
        description="Stop the selected experiments (assigned customers keep their arm)", permissions=["change"]
    )
    def stop_experiments(self, request, queryset):
        self._act(request, queryset, experiments.experiment_stop, "stopped")


@admin.register(PromoCode)
class PromoCodeAdmin(admin.ModelAdmin):
    list_display = ("code", "redeemed", "max_redemptions", "expires_at", "first_time_only", "country_list")
    list_filter = ("first_time_only",)
    search_fields = ("code", "stripe_promotion_code_id")
    readonly_fields = ("redeemed", "created_at")

    @admin.display(description="countries")
    def country_list(self, obj):
        return ", ".join(obj.countries) or "all"

    def save_model(self, request, obj, form, change):
        before = snapshot(PromoCode.objects.get(pk=obj.pk), promo_codes.AUDITED_FIELDS) if change else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            promo_codes.promo_code_saved(actor=request.user, promo=obj, created=not change, before=before)


@admin.register(PromoRedemption)
class PromoRedemptionAdmin(admin.ModelAdmin):
    """Support's answer to "did my code work": who redeemed which code, where and when: web promo codes, App
    Store offer codes and Play promo codes (from the stores' events). Read-only."""

    list_display = ("code", "platform", "customer_external_id", "country", "redeemed_at")
    list_filter = ("platform", "country")
    list_select_related = ("promo_code", "customer")
    search_fields = ("=promo_code__code", "=customer__external_id", "=store_offer_id", "=store_code")
    date_hierarchy = "redeemed_at"

    @admin.display(description="code")
    def code(self, obj):
        return obj.code_label

    @admin.display(description="customer", ordering="customer__external_id")
    def customer_external_id(self, obj):
        return obj.customer.external_id

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

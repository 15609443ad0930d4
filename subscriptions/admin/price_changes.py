"""Price changes: a superuser schedules a plan's new price in a country (checked against the stores' rules,
audited); afterwards it is read-only (a correction is a new change)."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from monetization import clock
from subscriptions.models import PriceChange
from subscriptions.services import price_changes


class PriceChangeForm(forms.ModelForm):
    class Meta:
        model = PriceChange
        fields = (
            "plan",
            "platform",
            "country",
            "amount",
            "effective_at",
            "existing_subscribers",
            "stripe_price_id",
            "reason",
        )

    def clean(self):
        data = super().clean()
        if {"platform", "existing_subscribers", "effective_at"} <= data.keys():
            problem = price_changes.price_change_problem(
                platform=data["platform"],
                existing_subscribers=data["existing_subscribers"],
                announced_at=clock.now(),
                effective_at=data["effective_at"],
            )
            if problem is not None:
                raise forms.ValidationError(problem.detail, code=problem.code)
        return data


@admin.register(PriceChange)
class PriceChangeAdmin(admin.ModelAdmin):
    form = PriceChangeForm
    list_display = ("plan", "platform", "country", "amount", "effective_at", "existing_subscribers")
    list_filter = ("platform", "existing_subscribers")
    list_select_related = ("plan",)
    search_fields = ("plan__code",)
    raw_id_fields = ("plan",)

    def save_model(self, request, obj, form, change):
        scheduled = price_changes.price_change_schedule(
            actor=request.user,
            plan=obj.plan,
            platform=obj.platform,
            country=obj.country,
            amount=obj.amount,
            effective_at=obj.effective_at,
            existing_subscribers=obj.existing_subscribers,
            stripe_price_id=obj.stripe_price_id,
            reason=obj.reason,
        )
        obj.pk = scheduled.pk

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

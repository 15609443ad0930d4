"""Offerings admin: the paywalls clients show, their ordered packages and country overrides.

Support and product staff edit them (the add/change permissions, see subscriptions/roles.py);
every save is audited with the packages and countries as they stand after it, and forgets the
cached offerings bodies on commit.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count

from monetization.errors import DomainError
from subscriptions.models import Offering, OfferingCountry, OfferingPackage
from subscriptions.services import offerings


class OfferingPackageInline(admin.TabularInline):
    model = OfferingPackage
    extra = 0
    fields = ("position", "key", "plan", "platform")
    ordering = ("position", "id")


class OfferingCountryInline(admin.TabularInline):
    model = OfferingCountry
    extra = 0
    fields = ("country",)


@admin.register(Offering)
class OfferingAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "is_current", "package_count", "country_list", "updated_at")
    list_filter = ("is_current",)
    search_fields = ("key", "name")
    readonly_fields = ("is_current", "created_at", "updated_at")
    inlines = (OfferingPackageInline, OfferingCountryInline)
    actions = ("make_current",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_packages=Count("packages", distinct=True))

    @admin.display(description="packages", ordering="_packages")
    def package_count(self, obj):
        return obj._packages

    @admin.display(description="countries")
    def country_list(self, obj):
        return ", ".join(obj.countries.values_list("country", flat=True)) or "-"

    def save_model(self, request, obj, form, change):
        # The audit comes after the inlines are saved (save_related), in the admin's transaction.
        request._offering_before = offerings.offering_snapshot(Offering.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        offerings.offering_saved(
            actor=request.user, offering=form.instance, created=not change, before=request._offering_before
        )

    @admin.action(description="Make the selected offering the current one", permissions=["change"])
    def make_current(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one offering.", messages.ERROR)
            return
        try:
            offering = offerings.offering_make_current(
                actor=request.user, offering_id=queryset.get().pk, reason="made current in the admin"
            )
        except DomainError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
            return
        self.message_user(request, f"'{offering.key}' is now the current offering.", messages.SUCCESS)

"""Offers admin: product families (one introductory offer per customer per family) and introductory offers.

They change what customers pay: creating and editing take the add/change permissions (superusers by
default; every role may look). Each save is audited, in the transaction of the save.
"""

from __future__ import annotations

from django.contrib import admin
from django.db import transaction

from monetization.services.audit import snapshot
from subscriptions.models import IntroductoryOffer, ProductFamily
from subscriptions.services import offers


@admin.register(ProductFamily)
class ProductFamilyAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "apple_subscription_group_id")
    search_fields = ("key", "name", "apple_subscription_group_id")
    filter_horizontal = ("products",)

    def save_model(self, request, obj, form, change):
        request._family_before = None
        if change:
            before = ProductFamily.objects.get(pk=obj.pk)
            request._family_before = {
                **snapshot(before, offers.FAMILY_FIELDS),
                "products": sorted(before.products.values_list("code", flat=True)),
            }
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        # The products are saved with the form's m2m, after save_model: audit once they are.
        with transaction.atomic():
            super().save_related(request, form, formsets, change)
            offers.product_family_saved(
                actor=request.user, family=form.instance, created=not change, before=request._family_before
            )


@admin.register(IntroductoryOffer)
class IntroductoryOfferAdmin(admin.ModelAdmin):
    list_display = ("plan", "platform", "payment_mode", "duration", "duration_unit", "price", "is_active")
    list_filter = ("platform", "payment_mode", "is_active")
    list_select_related = ("plan__product",)
    search_fields = ("plan__code", "play_offer_id", "stripe_coupon_id")
    raw_id_fields = ("plan",)
    readonly_fields = ("created_at",)

    def save_model(self, request, obj, form, change):
        before = offers.introductory_offer_snapshot(IntroductoryOffer.objects.get(pk=obj.pk)) if change else None
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            offers.introductory_offer_saved(actor=request.user, offer=obj, created=not change, before=before)

"""Catalog admin: entitlements, products, plans (with SKUs and prices), SKUs, prices.

Staff roles may only view the catalog; changing what we sell and at what
price is a superuser's job (see subscriptions/roles.py).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html

from monetization import clock
from subscriptions.models import Entitlement, Plan, Price, Product, Sku


@admin.register(Entitlement)
class EntitlementAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "product_count")
    search_fields = ("key", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_products=Count("products"))

    @admin.display(description="products", ordering="_products")
    def product_count(self, obj):
        return obj._products


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "kind", "rank", "entitlement_count", "is_active")
    list_filter = ("kind", "is_active")
    search_fields = ("code", "name")
    filter_horizontal = ("entitlements",)
    prepopulated_fields = {"code": ("name",)}

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_entitlements=Count("entitlements"))

    @admin.display(description="entitlements", ordering="_entitlements")
    def entitlement_count(self, obj):
        return obj._entitlements


class SkuInline(admin.TabularInline):
    model = Sku
    extra = 0
    fields = ("platform", "store_product_id", "base_plan_id", "is_active")


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("code", "product", "interval", "interval_count", "trial_days", "is_active")
    list_filter = ("interval", "product__kind", "is_active")
    list_select_related = ("product",)
    search_fields = ("code", "product__name")
    # A plan has a price per country, platform and component, and keeps every past one: as an inline that was
    # hundreds of forms, each with a select of every currency (seconds per page). The page summarises them in
    # one query and links to the Price list, where they are edited.
    inlines = (SkuInline,)
    readonly_fields = ("prices",)

    @admin.display(description="prices")
    def prices(self, obj):
        if obj is None or obj.pk is None:
            return "Add the plan first; its prices are added in the Price list."
        rows = (
            Price.objects.filter(plan=obj)
            .values("amount_currency")
            .annotate(
                n=Count("id"),
                current=Count("id", filter=Q(valid_until__isnull=True) | Q(valid_until__gt=clock.now())),
                countries=Count("country", distinct=True),
            )
            .order_by("amount_currency")
        )
        summary = "; ".join(
            f"{r['amount_currency']}: {r['current']} current of {r['n']} in {r['countries']} countries" for r in rows
        )
        url = reverse("admin:subscriptions_price_changelist") + f"?plan__id__exact={obj.pk}"
        return format_html('{} <a href="{}">See and edit them in the Price list</a>', summary or "None yet.", url)


@admin.register(Sku)
class SkuAdmin(admin.ModelAdmin):
    list_display = ("store_product_id", "base_plan_id", "platform", "plan", "is_active")
    list_filter = ("platform", "is_active")
    list_select_related = ("plan__product",)
    search_fields = ("=store_product_id", "plan__code")
    raw_id_fields = ("plan",)


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ("plan", "country", "platform_label", "component", "amount", "valid_from", "valid_until")
    list_filter = ("component", "platform", "country", "plan__product")
    list_select_related = ("plan__product",)
    search_fields = ("plan__code", "=country")
    raw_id_fields = ("plan",)

    @admin.display(description="platform", ordering="platform")
    def platform_label(self, obj):
        return obj.get_platform_display() or "all"

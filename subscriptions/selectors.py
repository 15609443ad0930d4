"""Reads of the catalog and of subscriptions that are more than a filter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q
from moneyed import CURRENCIES

from monetization import clock
from monetization.errors import ErrorCode, InvalidInput
from monetization.models import Customer, Provider

from .entitlements import ActiveEntitlement, resolve_entitlements
from .models import Grant, IntroductoryOffer, Plan, Platform, Price, Product, Sku, Subscription

SECTION_LIMIT = 50

# ISO 3166-1 alpha-2 codes, as py-moneyed knows them from ISO 4217. "ZZ" is ISO 4217's
# placeholder for supranational units (gold, SDR): not a country.
COUNTRY_CODES = frozenset(code for cur in CURRENCIES.values() for code in (cur.country_codes or ()) if code != "ZZ")


@dataclass
class CatalogPlan:
    plan: Plan
    sku: Sku
    price: Price | None
    seat_price: Price | None
    # Filled by selectors_offers.catalog_offers_attach: the offer this customer may take (None: none).
    introductory_offer: IntroductoryOffer | None = None
    introductory_offer_eligible: bool | None = None  # None: no customer was named


@dataclass
class CatalogProduct:
    product: Product
    plans: list[CatalogPlan]


def price_in_force(prices: list[Price], *, platform: str, country: str, component: str, at: datetime) -> Price | None:
    """The price valid at ``at`` for the country, a platform-specific one beating a generic one."""
    candidates = [
        p
        for p in prices
        if p.country == country
        and p.component == component
        and p.platform in ("", platform)
        and p.valid_from <= at
        and (p.valid_until is None or p.valid_until > at)
    ]
    candidates.sort(key=lambda p: (p.platform == platform, p.valid_from), reverse=True)
    return candidates[0] if candidates else None


def catalog_for(*, platform: str, country: str, at: datetime | None = None) -> list[CatalogProduct]:
    """Products sellable on ``platform`` with their plans, SKUs and the price in ``country``. Three queries."""
    if platform not in Platform.values:
        raise InvalidInput(
            f"Unknown platform '{platform}'. Use one of: {', '.join(Platform.values)}.", code=ErrorCode.UNKNOWN_PLATFORM
        )
    country = (country or "").upper()
    if country not in COUNTRY_CODES:
        raise InvalidInput(
            f"Unknown country '{country}'. Use an ISO 3166-1 alpha-2 code such as US or DE.",
            code=ErrorCode.UNKNOWN_COUNTRY,
        )
    at = at or clock.now()
    skus = Sku.objects.filter(platform=platform, is_active=True)
    prices = Price.objects.filter(Q(platform="") | Q(platform=platform), country=country, valid_from__lte=at).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=at)
    )
    plans = (
        Plan.objects.filter(is_active=True, product__is_active=True, skus__platform=platform, skus__is_active=True)
        .select_related("product")
        .prefetch_related(Prefetch("skus", queryset=skus), Prefetch("prices", queryset=prices))
        .order_by("product__kind", "product__rank", "product__code", "interval")
    )
    by_product: dict[int, CatalogProduct] = {}
    entitlement_keys = _entitlement_keys_by_product()
    for plan in plans:
        plan_prices = list(plan.prices.all())
        sku = plan.skus.all()[0]
        entry = by_product.setdefault(plan.product_id, CatalogProduct(product=plan.product, plans=[]))
        entry.product.entitlement_keys = entitlement_keys.get(plan.product_id, [])
        entry.plans.append(
            CatalogPlan(
                plan=plan,
                sku=sku,
                price=price_in_force(
                    plan_prices, platform=platform, country=country, component=Price.Component.BASE, at=at
                ),
                seat_price=price_in_force(
                    plan_prices, platform=platform, country=country, component=Price.Component.SEAT, at=at
                ),
            )
        )
    return list(by_product.values())


def _entitlement_keys_by_product() -> dict[int, list[str]]:
    through = Product.entitlements.through
    keys: dict[int, list[str]] = {}
    for product_id, key in through.objects.values_list("product_id", "entitlement__key").order_by("entitlement__key"):
        keys.setdefault(product_id, []).append(key)
    return keys


@dataclass
class CustomerSubscriptions:
    """What the support console shows of a customer here: one query per list, one resolution."""

    subscriptions: list[Subscription]
    entitlements: list[ActiveEntitlement]
    grants: list[Grant]


def customer_subscriptions(customer: Customer) -> CustomerSubscriptions:
    return CustomerSubscriptions(
        subscriptions=list(
            Subscription.objects.filter(customer=customer)
            .select_related("plan__product")
            .order_by("-id")[:SECTION_LIMIT]
        ),
        entitlements=resolve_entitlements(customer.pk),
        grants=list(
            Grant.objects.filter(customer=customer)
            .select_related("entitlement", "product", "granted_by")
            .order_by("-id")[:SECTION_LIMIT]
        ),
    )


def customers_by_provider_subscription_id(term: str) -> list[int]:
    """Customers whose subscription has this provider id (the support search box)."""
    # The unique index leads with provider: naming every provider keeps this an index lookup.
    return list(
        Subscription.objects.filter(provider__in=list(Provider.values), provider_subscription_id=term).values_list(
            "customer_id", flat=True
        )[:20]
    )


def subscription_for_output(pk: int) -> Subscription:
    """A subscription as it stands now, with what an API answer shows of it (customer, plan)."""
    return Subscription.objects.select_related("customer", "plan").get(pk=pk)

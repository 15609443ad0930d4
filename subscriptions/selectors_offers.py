"""Reads of introductory offers: which a plan has on a platform, and whether a customer may still take one.

One introductory offer per customer per product family, whatever the store: a trial or intro price
used on the App Store, Google Play or the web blocks the offers of every product in the same family
(a product in no family is a family of its own).
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Q

from monetization.models import Customer

from .models import IntroductoryOffer, IntroductoryOfferUse, Product, Subscription
from .selectors import CatalogProduct


def introductory_offer_used_products(customer_id: int) -> set[int]:
    """Products whose introductory offers this customer may no longer take: those they used one on (our
    records of provider events, and any subscription that had a trial) and every product sharing a family."""
    used = set(IntroductoryOfferUse.objects.filter(customer_id=customer_id).values_list("product_id", flat=True))
    used |= set(
        Subscription.objects.filter(customer_id=customer_id, trial_end__isnull=False).values_list(
            "plan__product_id", flat=True
        )
    )
    if not used:
        return set()
    peers = Product.objects.filter(families__products__in=used).values_list("pk", flat=True)
    return used | set(peers)


def introductory_offer_eligible(*, customer_id: int, product_id: int) -> bool:
    return product_id not in introductory_offer_used_products(customer_id)


def introductory_offers_for(*, platform: str, country: str, plan_ids: Sequence[int]) -> dict[int, IntroductoryOffer]:
    """The active offer of each plan on ``platform`` sold in ``country`` (one query)."""
    offers = IntroductoryOffer.objects.filter(plan_id__in=plan_ids, platform=platform, is_active=True).filter(
        Q(countries=[]) | Q(countries__contains=[country.upper()])
    )
    return {offer.plan_id: offer for offer in offers}


def catalog_offers_attach(
    products: list[CatalogProduct], *, platform: str, country: str, customer_external_id: str = ""
) -> list[CatalogProduct]:
    """Put each plan's introductory offer on the catalog; with a customer, only the offers they may take.

    An unknown customer has no history here: every offer is theirs to take (new accounts read the
    catalog before their first purchase)."""
    plans = [entry for product in products for entry in product.plans]
    if not plans:
        return products
    offers = introductory_offers_for(platform=platform, country=country, plan_ids=[p.plan.pk for p in plans])
    blocked: set[int] | None = None
    if customer_external_id:
        customer_id = Customer.objects.filter(external_id=customer_external_id).values_list("pk", flat=True).first()
        blocked = introductory_offer_used_products(customer_id) if customer_id is not None else set()
    for entry in plans:
        offer = offers.get(entry.plan.pk)
        if blocked is None:
            entry.introductory_offer = offer
            continue
        entry.introductory_offer_eligible = entry.plan.product_id not in blocked
        entry.introductory_offer = offer if entry.introductory_offer_eligible else None
    return products

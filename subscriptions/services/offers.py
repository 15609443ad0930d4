"""Staff edits of offers in the catalog: product families and introductory offers, checked and audited."""

from __future__ import annotations

from monetization.services.audit import audit_record, snapshot
from monetization.services.permissions import require_perm
from subscriptions.models import IntroductoryOffer, ProductFamily

INTRO_OFFER_FIELDS = [
    "family_id",
    "plan_id",
    "platform",
    "payment_mode",
    "duration",
    "duration_unit",
    "price",
    "countries",
    "play_offer_id",
    "play_offer_tags",
    "stripe_coupon_id",
    "is_active",
]
FAMILY_FIELDS = ["key", "name", "apple_subscription_group_id"]


def introductory_offer_snapshot(offer: IntroductoryOffer) -> dict:
    return snapshot(offer, INTRO_OFFER_FIELDS)


def introductory_offer_saved(*, actor, offer: IntroductoryOffer, created: bool, before: dict | None = None) -> None:
    """Audit a staff edit of an introductory offer (the admin saves the form in a transaction, then calls this)."""
    require_perm(actor, "subscriptions.add_introductoryoffer" if created else "subscriptions.change_introductoryoffer")
    audit_record(
        action="introductory_offer.created" if created else "introductory_offer.changed",
        obj=offer,
        actor=actor,
        before=before,
        after=introductory_offer_snapshot(offer),
    )


def product_family_saved(*, actor, family: ProductFamily, created: bool, before: dict | None = None) -> None:
    require_perm(actor, "subscriptions.add_productfamily" if created else "subscriptions.change_productfamily")
    after = snapshot(family, FAMILY_FIELDS)
    after["products"] = sorted(family.products.values_list("code", flat=True))
    audit_record(
        action="product_family.created" if created else "product_family.changed",
        obj=family,
        actor=actor,
        before=before,
        after=after,
    )

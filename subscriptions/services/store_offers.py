"""What provider events say about offers: introductory offers used (eligibility everywhere after), and
store codes redeemed (App Store offer codes, Play promo codes: Support's list of who redeemed what).

Called by the provider sync for every snapshot it applies, in the same transaction: rows are written
set-based with ON CONFLICT DO NOTHING, so re-deliveries and batches write each fact once.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Q

from monetization.providers.base import OfferKind, SubscriptionSnapshot
from subscriptions.models import (
    IntroductoryOffer,
    IntroductoryOfferUse,
    Plan,
    Platform,
    PromoRedemption,
    Subscription,
)

STORE_PROVIDERS = ("app_store", "google_play")
PROVIDER_PLATFORM = {"app_store": Platform.IOS, "google_play": Platform.ANDROID, "stripe": Platform.WEB}


def _catalog_intro_ids(snapshots: Sequence[SubscriptionSnapshot]) -> set[tuple[str, str]]:
    """(provider, offer id) of the catalog's introductory offers among the snapshots' offers: a Play offer
    past its intro phase, or a Stripe coupon, is known as introductory only by the catalog."""
    play = {s.offer.offer_id for s in snapshots if s.provider == "google_play" and s.offer and s.offer.offer_id}
    coupons = {s.offer.offer_id for s in snapshots if s.provider == "stripe" and s.offer and s.offer.offer_id}
    if not play and not coupons:
        return set()
    rows = IntroductoryOffer.objects.filter(
        Q(platform=Platform.ANDROID, play_offer_id__in=play) | Q(platform=Platform.WEB, stripe_coupon_id__in=coupons)
    ).values_list("platform", "play_offer_id", "stripe_coupon_id")
    found = set()
    for platform, play_offer_id, coupon_id in rows:
        if platform == Platform.ANDROID:
            found.add(("google_play", play_offer_id))
        else:
            found.add(("stripe", coupon_id))
    return found


def _introductory(snapshot: SubscriptionSnapshot, catalog_ids: set[tuple[str, str]]) -> bool:
    offer = snapshot.offer
    if snapshot.trial_end is not None:
        return True
    if offer is None:
        return False
    return offer.kind == OfferKind.INTRODUCTORY or (snapshot.provider, offer.offer_id) in catalog_ids


def store_offers_record(pairs: Sequence[tuple[Subscription, SubscriptionSnapshot]]) -> None:
    """Record the introductory offers and store codes the snapshots show (each once per subscription)."""
    pairs = [(sub, snap) for sub, snap in pairs if snap.offer is not None or snap.trial_end is not None]
    if not pairs:
        return
    store_codes_record(pairs)
    catalog_ids = _catalog_intro_ids([snap for _sub, snap in pairs])
    intro = [(sub, snap) for sub, snap in pairs if _introductory(snap, catalog_ids)]
    if not intro:
        return
    product_of = dict(Plan.objects.filter(pk__in={sub.plan_id for sub, _ in intro}).values_list("pk", "product_id"))
    IntroductoryOfferUse.objects.bulk_create(
        [
            IntroductoryOfferUse(
                customer_id=sub.customer_id,
                product_id=product_of[sub.plan_id],
                subscription=sub,
                provider=sub.provider,
                offer_id=snap.offer.offer_id if snap.offer else "",
                free_trial=snap.trial_end is not None or bool(snap.offer and snap.offer.free_trial),
                used_at=snap.current_period_start or snap.as_of,
            )
            for sub, snap in intro
        ],
        ignore_conflicts=True,
    )


def store_codes_record(pairs: Sequence[tuple[Subscription, SubscriptionSnapshot]]) -> None:
    """A store code the customer redeemed, as a redemption Support reads beside the web's promo codes.
    Our web codes are redeemed at checkout (promo_codes.promo_code_redeem), not from Stripe's echo."""
    rows = [
        PromoRedemption(
            promo_code=None,
            customer_id=sub.customer_id,
            platform=PROVIDER_PLATFORM[sub.provider],
            subscription=sub,
            store_offer_id=snap.offer.offer_id,
            store_code=snap.offer.code[:64],
            redeemed_at=snap.current_period_start or snap.as_of,
        )
        for sub, snap in pairs
        if snap.offer is not None and snap.offer.kind == OfferKind.OFFER_CODE and sub.provider in STORE_PROVIDERS
    ]
    if rows:
        PromoRedemption.objects.bulk_create(rows, ignore_conflicts=True)

"""Web promo codes: redemption under a hard limit, expiry, first-time-only and country rules."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from monetization import clock
from monetization.errors import Conflict, GrowthErrorCode, NotFound
from monetization.models import AuditEvent, Customer
from monetization.services.audit import audit_record, snapshot
from monetization.services.permissions import require_perm
from subscriptions.models import PromoCode, PromoRedemption, Subscription

AUDITED_FIELDS = ["code", "max_redemptions", "expires_at", "first_time_only", "countries", "stripe_promotion_code_id"]


@dataclass(frozen=True)
class RedeemResult:
    redemption: PromoRedemption
    created: bool


def promo_code_redeem(
    *, code: str, customer_external_id: str, country: str = "", client_label: str = ""
) -> RedeemResult:
    """Redeem ``code`` for a customer at checkout; the same customer redeeming again gets their redemption back.

    The limit holds under any concurrency: one conditional UPDATE (``redeemed = redeemed + 1 WHERE
    redeemed < max_redemptions``) takes the slot, and the redemption row is written in the same
    transaction, so a failure after it gives the slot back.
    """
    promo = PromoCode.objects.filter(code=code.strip().upper()).first()
    if promo is None:
        raise NotFound(f"No promo code '{code}'.", code=GrowthErrorCode.PROMO_CODE_NOT_FOUND)
    customer = Customer.objects.filter(external_id=customer_external_id).first()
    if customer is None:
        raise NotFound(f"No customer with external id '{customer_external_id}'.")
    existing = PromoRedemption.objects.filter(promo_code=promo, customer=customer).first()
    if existing is not None:
        return RedeemResult(existing, created=False)
    if promo.expires_at is not None and promo.expires_at <= clock.now():
        raise Conflict("This promo code has expired.", code=GrowthErrorCode.PROMO_CODE_EXPIRED)
    country = (country or customer.country or "").strip().upper()
    if promo.countries and country not in promo.countries:
        raise Conflict("This promo code is not offered in this country.", code=GrowthErrorCode.PROMO_CODE_NOT_ELIGIBLE)
    if promo.first_time_only and Subscription.objects.filter(customer=customer).exists():
        raise Conflict("This promo code is for new subscribers only.", code=GrowthErrorCode.PROMO_CODE_NOT_ELIGIBLE)
    try:
        with transaction.atomic():
            taken = PromoCode.objects.filter(pk=promo.pk, redeemed__lt=F("max_redemptions")).update(
                redeemed=F("redeemed") + 1
            )
            if not taken:
                raise Conflict("This promo code has been used up.", code=GrowthErrorCode.PROMO_CODE_EXHAUSTED)
            redemption = PromoRedemption.objects.create(promo_code=promo, customer=customer, country=country)
            audit_record(
                action="promo_code.redeemed",
                obj=redemption,
                actor_kind=AuditEvent.ActorKind.CLIENT,
                actor_label=client_label or "api",
                customer=customer,
                after={"code": promo.code, "country": country},
            )
    except IntegrityError:
        # The same customer's concurrent checkout won: its redemption is the answer (and our slot went back).
        return RedeemResult(PromoRedemption.objects.get(promo_code=promo, customer=customer), created=False)
    return RedeemResult(redemption, created=True)


def promo_code_saved(*, actor, promo: PromoCode, created: bool, before: dict | None = None) -> None:
    """Audit a staff edit of a promo code (the admin saves the form, then calls this)."""
    require_perm(actor, "subscriptions.add_promocode" if created else "subscriptions.change_promocode")
    audit_record(
        action="promo_code.created" if created else "promo_code.changed",
        obj=promo,
        actor=actor,
        before=before,
        after=snapshot(promo, AUDITED_FIELDS),
    )

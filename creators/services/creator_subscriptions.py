"""Fans subscribing to a creator: the creator's share of each payment joins their earnings.

Share (settings.CREATOR_SUBSCRIPTION_SHARE): ``rate`` of the payment (net of tax) while the
creator's lifetime basis is under ``lifetime_threshold`` (USD), ``rate_after`` beyond it; a
payment straddling the threshold is split at it. Posted once per payment (debit
expense:creator_revenue_share, credit liability:creator_payable; key
``payment:<id>:creator_share``); the cycle of the payment's month adds it to the earning.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from djmoney.money import Money

from monetization.errors import InvalidInput
from monetization.models import Payment
from monetization.services.audit import audit_record
from monetization.services.ledger import Account, Leg, Posting, journal_post, quantize
from subscriptions.models import Subscription
from subscriptions.services.payments import payment_subscription

from ..models import CreatorAccount, CreatorSubscriptionLink, CreatorSubscriptionShare


def share_amount(*, basis: Decimal, lifetime_before: Decimal, currency: str) -> Decimal:
    config = settings.CREATOR_SUBSCRIPTION_SHARE
    rate, rate_after = Decimal(config["rate"]), Decimal(config["rate_after"])
    threshold = Decimal(config["lifetime_threshold"])
    below = max(Decimal(0), min(basis, threshold - lifetime_before))
    above = basis - below
    return quantize(below * rate + above * rate_after, currency)


def creator_subscription_payment_share(
    *, payment: Payment, subscription: Subscription | None = None
) -> CreatorSubscriptionShare | None:
    """The creator's share of a succeeded payment of a creator-subscription plan (idempotent).

    ``subscription``: the one the payment paid for (looked up when not given). Returns None
    for payments that are not for a creator subscription.
    """
    subscription = subscription or payment_subscription(payment.pk)
    if subscription is None:
        return None
    link = CreatorSubscriptionLink.objects.filter(plan_id=subscription.plan_id).first()
    if link is None:
        return None
    if payment.status not in (Payment.Status.SUCCEEDED, Payment.Status.PARTIALLY_REFUNDED, Payment.Status.REFUNDED):
        raise InvalidInput("Only a succeeded payment is shared.")
    with transaction.atomic():
        # Serialises shares of one creator, so the lifetime threshold is crossed exactly once.
        creator = CreatorAccount.objects.select_for_update().get(pk=link.creator_id)
        existing = CreatorSubscriptionShare.objects.filter(payment=payment).first()
        if existing is not None:
            return existing
        currency = str(payment.amount.currency)
        basis = payment.amount.amount - payment.tax.amount
        lifetime = CreatorSubscriptionShare.objects.filter(creator=creator).aggregate(s=Sum("basis"))["s"] or Decimal(0)
        amount = share_amount(basis=basis, lifetime_before=lifetime, currency=currency)
        share = CreatorSubscriptionShare.objects.create(
            payment=payment,
            creator=creator,
            basis=basis,
            amount=amount,
            currency=currency,
            lifetime_basis_before=lifetime,
            occurred_at=payment.occurred_at,
        )
        journal_post(
            Posting(
                key=f"payment:{payment.pk}:creator_share",
                kind="creator_subscription_share",
                legs=[
                    Leg(Account.CREATOR_REVENUE_SHARE, Money(amount, currency)),
                    Leg(Account.CREATOR_PAYABLE, Money(-amount, currency)),
                ],
                memo=f"Creator share of payment {payment.pk}",
                customer=creator.customer,
                source_type="monetization.payment",
                source_id=str(payment.pk),
                posted_at=payment.occurred_at,
            )
        )
        audit_record(
            action="creator.subscription_share",
            obj=share,
            customer=creator.customer,
            after={"payment": payment.pk, "amount": str(amount), "currency": currency},
        )
        return share


def creator_subscription_payment_hook(payment: Payment, subscription: Subscription) -> None:
    """Subscription payment hook (registered in creators.apps): share every succeeded creator-subscription payment.

    Runs inside the payment's transaction; idempotent (one share row per payment, journal
    key ``payment:<id>:creator_share``), so a replay through any path posts the share once.
    """
    # Recording the payment loaded plan -> product for the revenue stream: no query for the
    # common case of a payment that is not for a creator subscription.
    if subscription.plan.product.kind != "creator":
        return
    creator_subscription_payment_share(payment=payment, subscription=subscription)

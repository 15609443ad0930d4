"""Refunds and lost disputes of fan payments take the creator's share back.

A fan's payment shared with a creator (``CreatorSubscriptionShare``) that is refunded, or whose
dispute is lost, claws back the same proportion of the share: once per refund or dispute
(``reference``), rounded so that the clawbacks of a payment add up to exactly its share once the
whole payment is reversed, never more. The ledger gets the reverse of the share's posting
(debit liability:creator_payable, credit expense:creator_revenue_share; key
``<reference>:creator_clawback``) and the cycle of the month it occurred in subtracts it from the
creator's earning in that currency: a creator already paid carries a negative balance (a
recorded debt) into later cycles until new earnings cover it.
"""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Sum
from djmoney.money import Money

from monetization import clock
from monetization.errors import InvalidInput
from monetization.models import Payment
from monetization.services.audit import audit_record
from monetization.services.ledger import Account, Leg, Posting, journal_post, quantize

from ..models import CreatorAccount, CreatorClawback, CreatorSubscriptionShare


def clawback_amounts(*, share: CreatorSubscriptionShare, payment: Payment, amount: Money) -> tuple[Decimal, Decimal]:
    """(part of the payment reversed now, share taken back now) when ``amount`` more of ``payment`` is
    reversed: proportional to everything reversed so far, so rounding never drifts past the share."""
    before = CreatorClawback.objects.filter(share=share).aggregate(reversed=Sum("payment_amount"), taken=Sum("amount"))
    reversed_before = before["reversed"] or Decimal(0)
    paid = payment.amount.amount
    reversed_total = min(paid, reversed_before + amount.amount)
    target = share.amount if reversed_total >= paid else quantize(share.amount * reversed_total / paid, share.currency)
    return reversed_total - reversed_before, max(Decimal(0), target - (before["taken"] or Decimal(0)))


def creator_share_clawback(
    *, payment: Payment, amount: Money, reference: str, kind: str, occurred_at: datetime.datetime | None = None
) -> CreatorClawback | None:
    """Take back the creator's share of ``amount`` of ``payment`` (idempotent on ``reference``).

    None when the payment was shared with no creator.
    """
    share = CreatorSubscriptionShare.objects.filter(payment_id=payment.pk).first()
    if share is None:
        return None
    if kind not in CreatorClawback.Kind.values:
        raise InvalidInput(f"Unknown clawback kind {kind!r}.")
    currency = share.currency
    if str(amount.currency) != currency or amount.amount <= 0:
        raise InvalidInput("A clawback must be positive and in the payment's currency.")
    with transaction.atomic():
        # Serialises the clawbacks of one creator (as the shares are), so a payment is never over-reversed.
        creator = CreatorAccount.objects.select_for_update().select_related("customer").get(pk=share.creator_id)
        existing = CreatorClawback.objects.filter(reference=reference).first()
        if existing is not None:
            return existing
        reversed_now, taken = clawback_amounts(share=share, payment=payment, amount=amount)
        clawback = CreatorClawback.objects.create(
            reference=reference,
            kind=kind,
            share=share,
            creator=creator,
            payment_amount=reversed_now,
            amount=taken,
            currency=currency,
            occurred_at=occurred_at or clock.now(),
        )
        if taken:
            journal_post(
                Posting(
                    key=f"{reference}:creator_clawback",
                    kind="creator_clawback",
                    legs=[
                        Leg(Account.CREATOR_PAYABLE, Money(taken, currency)),
                        Leg(Account.CREATOR_REVENUE_SHARE, Money(-taken, currency)),
                    ],
                    memo=f"Creator share taken back: {kind} of payment {payment.pk}",
                    customer=creator.customer,
                    source_type="creators.creatorclawback",
                    source_id=str(clawback.pk),
                    posted_at=clawback.occurred_at,
                )
            )
        audit_record(
            action="creator.clawback",
            obj=clawback,
            customer=creator.customer,
            after={"payment": payment.pk, "reference": reference, "amount": str(taken), "currency": currency},
        )
        return clawback


def creator_refund_clawback_hook(refund, actor) -> None:
    """Refund-succeeded hook (registered in creators.apps): a refunded fan payment takes the share back."""
    creator_share_clawback(
        payment=refund.payment, amount=refund.amount, reference=f"refund:{refund.pk}", kind=CreatorClawback.Kind.REFUND
    )


def creator_dispute_clawback_hook(payment, amount, reference, occurred_at) -> None:
    """Dispute-lost hook (registered in creators.apps): a lost dispute takes the share back like a refund."""
    creator_share_clawback(
        payment=payment, amount=amount, reference=reference, kind=CreatorClawback.Kind.DISPUTE, occurred_at=occurred_at
    )


def creator_refund_preview(intent) -> dict | None:
    """Refund preview part (registered in creators.apps): the share a refund of a fan payment takes back."""
    share = CreatorSubscriptionShare.objects.select_related("creator__customer").filter(payment_id=intent.payment.pk)
    share = share.first()
    if share is None:
        return None
    _reversed, taken = clawback_amounts(share=share, payment=intent.payment, amount=intent.amount)
    return {
        "creator": share.creator_id,
        "handle": share.creator.customer.handle,
        "share": str(share.amount),
        "clawback": str(taken),
        "currency": share.currency,
    }

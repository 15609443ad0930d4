"""What a refund will do, shown before it is requested: the money, and what the refund hooks will change.

Reads only. The money comes from :func:`refund_legs`, the legs the booking posts; each app that
registers a refund-succeeded hook registers a preview beside it in :data:`refund_preview_parts`,
built on the same decision its hook takes (which subscription ends and how, which share is
clawed back and how much), so the preview and the refund cannot drift apart.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field

from djmoney.money import Money

from monetization import clock
from monetization.models import Payment
from monetization.registry import Registry
from monetization.services.ledger import Account
from monetization.services.permissions import require_perm
from monetization.services.refunds import (
    PERM_REQUEST,
    refund_check,
    refund_check_payment,
    refund_legs,
    refund_needs_approval,
)


@dataclass(frozen=True)
class RefundIntent:
    """A refund as Support is about to ask for it."""

    payment: Payment
    amount: Money
    revoke_access: str
    at: datetime.datetime


# refund_preview_parts.register(name, fn(intent) -> JSON-able dict, or None when the refund changes
# nothing of the app's) from AppConfig.ready(), beside the app's refund-succeeded hook.
RefundPreviewPart = Callable[[RefundIntent], dict | None]
refund_preview_parts: Registry[RefundPreviewPart] = Registry("refund preview part")


@dataclass(frozen=True)
class RefundPreview:
    payment_id: int
    amount: Money
    refundable: Money  # before this refund
    revoke_access: str
    needs_approval: bool  # four-eyes: nothing below happens until a second person approves
    approval_reason: str
    tax_reversed: Money  # out of tax payable (zero where the store remitted the tax itself)
    commission_reversed: Money  # the store's commission it gives back
    fee_reversed: Money  # the provider keeps its processing fee: always zero
    fee_kept: Money
    cash_out: Money  # what leaves the provider's balance
    ledger: list[tuple[str, Money]]  # (account, amount): the journal lines the refund posts
    effects: dict[str, dict] = field(default_factory=dict)  # per app: entitlements, seats, creator clawback

    def as_dict(self) -> dict:
        def money(m: Money) -> str:
            return str(m.amount)

        return {
            "payment": self.payment_id,
            "amount": money(self.amount),
            "currency": str(self.amount.currency),
            "refundable": money(self.refundable),
            "revoke_access": self.revoke_access,
            "needs_approval": self.needs_approval,
            "approval_reason": self.approval_reason,
            "tax_reversed": money(self.tax_reversed),
            "commission_reversed": money(self.commission_reversed),
            "fee_reversed": money(self.fee_reversed),
            "fee_kept": money(self.fee_kept),
            "cash_out": money(self.cash_out),
            "ledger": [{"account": account, "amount": money(amount)} for account, amount in self.ledger],
            "effects": self.effects,
        }


def refund_preview(*, payment: Payment, amount: Money, revoke_access: str, user) -> RefundPreview:
    """What :func:`refund_request` with these parameters would do now; refused with the same codes."""
    require_perm(user, PERM_REQUEST)
    refund_check(payment=payment, amount=amount, revoke_access=revoke_access)
    payment = Payment.objects.get(pk=payment.pk)
    refundable = refund_check_payment(payment, amount)
    now = clock.now()
    needs_approval, why = refund_needs_approval(customer_id=payment.customer_id, amount=amount, now=now)
    legs = refund_legs(payment, amount)
    by_account = {leg.account: leg.amount for leg in legs}
    currency = str(amount.currency)
    zero = Money(0, currency)
    intent = RefundIntent(payment=payment, amount=amount, revoke_access=revoke_access, at=now)
    effects = {}
    for name, part in refund_preview_parts.items():
        found = part(intent)
        if found is not None:
            effects[name] = found
    return RefundPreview(
        payment_id=payment.pk,
        amount=amount,
        refundable=refundable,
        revoke_access=revoke_access,
        needs_approval=needs_approval,
        approval_reason=why,
        tax_reversed=by_account.get(Account.TAX_PAYABLE, zero),
        commission_reversed=-by_account.get(Account.STORE_COMMISSION, zero),
        fee_reversed=zero,
        fee_kept=payment.fee if payment.fee is not None else zero,
        cash_out=-by_account.get(Account.cash(payment.provider), zero),
        ledger=[(leg.account, leg.amount) for leg in legs if leg.amount.amount],
        effects=effects,
    )

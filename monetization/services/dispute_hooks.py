"""What follows from a lost dispute beyond the money: product apps take back what the payment funded.

Whoever books a lost dispute (the Stripe provider's dispute handling) calls
:func:`run_dispute_lost_hooks` inside the transaction that books it, once per dispute; an app
registers ``fn(payment, amount, reference, occurred_at)`` from ``AppConfig.ready()``. ``reference``
names the dispute uniquely (``dispute:<provider id>``), so a hook can be idempotent on it.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

from djmoney.money import Money

from monetization.models import Payment
from monetization.registry import Registry

DisputeLostHook = Callable[[Payment, Money, str, datetime.datetime], None]
dispute_lost_hooks: Registry[DisputeLostHook] = Registry("dispute-lost hook")


def run_dispute_lost_hooks(*, payment: Payment, amount: Money, reference: str, occurred_at: datetime.datetime) -> None:
    for hook in dispute_lost_hooks:
        hook(payment, amount, reference, occurred_at)

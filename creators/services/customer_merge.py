"""Creators' part of merging two customers: the creator account (earnings, payouts, tax profile) moves with it."""

from __future__ import annotations

from creators.models import CreatorAccount
from monetization.services.customer_merge import Moved, MoveScope


def creators_move(scope: MoveScope, apply: bool) -> list[Moved]:
    if not scope.is_merge:
        return []
    accounts = CreatorAccount.objects.filter(customer=scope.source)
    blocked = ""
    if accounts.exists() and CreatorAccount.objects.filter(customer=scope.target).exists():
        # Two creator accounts cannot become one: their cycles, earnings and payouts are separate books.
        blocked = "both customers have a creator account"
    moved = [Moved("creator accounts", accounts.count(), blocked=blocked)]
    if apply and not blocked:
        accounts.update(customer=scope.target)
    return moved

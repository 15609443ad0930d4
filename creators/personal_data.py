"""Creators' part of personal data requests: a creator's account, earnings and payouts, and the
creator shares of a fan's payments."""

from __future__ import annotations

from monetization.personal_data import source

CREATOR = ("creator__customer",)


def register() -> None:
    source("creators.CreatorAccount", customer_paths=("customer",))
    source("creators.PayoutProfile", customer_paths=CREATOR)
    source("creators.CreatorStats", customer_paths=CREATOR)
    source("creators.EligibilityDecision", customer_paths=CREATOR)
    source("creators.CreatorEarning", customer_paths=CREATOR)
    # Hundreds of millions of rows, partitioned by month: counts only, nothing to rewrite.
    source("creators.DailyEngagement", customer_paths=CREATOR, personal_fields=())
    source("creators.Payout", customer_paths=CREATOR)
    source("creators.PayoutHold", customer_paths=("payout__creator__customer",))
    source("creators.CreatorSubscriptionLink", customer_paths=CREATOR, personal_fields=())
    # A fan's payment shared with a creator: the fan's data as much as the creator's.
    source("creators.CreatorSubscriptionShare", customer_paths=(*CREATOR, "payment__customer"))
    source("creators.CreatorClawback", customer_paths=(*CREATOR, "share__payment__customer"))

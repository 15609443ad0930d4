from .accounts import CreatorAccount, CreatorStats, EligibilityDecision, PayoutProfile
from .cycles import CreatorEarning, RevenueShareCycle
from .engagement import DailyEngagement
from .payouts import Payout, PayoutHold
from .subscriptions import CreatorClawback, CreatorSubscriptionLink, CreatorSubscriptionShare

__all__ = [
    "CreatorAccount",
    "CreatorClawback",
    "CreatorEarning",
    "CreatorStats",
    "CreatorSubscriptionLink",
    "CreatorSubscriptionShare",
    "DailyEngagement",
    "EligibilityDecision",
    "Payout",
    "PayoutHold",
    "PayoutProfile",
    "RevenueShareCycle",
]

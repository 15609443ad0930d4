"""Google Play: real-time developer notifications (Pub/Sub push) and the Play Developer API."""

from ..base import Capabilities
from .adapter import GooglePlayProvider
from .client import GoogleApiSubscriptionsV2Client, SubscriptionsV2Client
from .parsing import (
    NOTIFICATION_TYPES,
    PAYMENT_CODES,
    event_facts,
    event_snapshot,
    order_refund,
    play_money,
    relevant,
    snapshot_from_v2,
)
from .rules import (
    COMMISSION_RULES,
    PLATFORM_RULES,
    REFUND_ACCESS,
    REMITS_TAX,
    manage_subscription_url,
    rule_problem,
)

# Users pause Play subscriptions in the store (we follow through its notifications); we cannot.
CAPABILITIES = Capabilities(refund=True, cancel=True, extend=True, paused_state=True)


__all__ = [
    "CAPABILITIES",
    "COMMISSION_RULES",
    "NOTIFICATION_TYPES",
    "PAYMENT_CODES",
    "PLATFORM_RULES",
    "REFUND_ACCESS",
    "REMITS_TAX",
    "GoogleApiSubscriptionsV2Client",
    "GooglePlayProvider",
    "SubscriptionsV2Client",
    "event_facts",
    "event_snapshot",
    "manage_subscription_url",
    "order_refund",
    "play_money",
    "relevant",
    "rule_problem",
    "snapshot_from_v2",
]

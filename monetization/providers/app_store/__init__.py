"""The App Store: Server Notifications V2, signed transactions, and the App Store Server API."""

from ..base import Capabilities
from .adapter import AppStoreProvider
from .parsing import (
    app_store_status,
    event_facts,
    event_snapshot,
    relevant,
    snapshot_from_transaction,
    transaction_amount,
)
from .rules import (
    COMMISSION_RULES,
    PLATFORM_RULES,
    REFUND_ACCESS,
    REMITS_TAX,
    manage_subscription_url,
    rule_problem,
)

# Apple refunds and cancels App Store purchases itself; extending a renewal date is the one write it allows.
CAPABILITIES = Capabilities(extend=True, refund_reversal=True)

__all__ = [
    "CAPABILITIES",
    "COMMISSION_RULES",
    "PLATFORM_RULES",
    "REFUND_ACCESS",
    "REMITS_TAX",
    "AppStoreProvider",
    "app_store_status",
    "event_facts",
    "event_snapshot",
    "manage_subscription_url",
    "relevant",
    "rule_problem",
    "snapshot_from_transaction",
    "transaction_amount",
]

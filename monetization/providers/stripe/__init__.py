"""Stripe (the web): subscriptions, invoices, refunds, and Connect payouts to creators."""

from ..base import Capabilities
from .adapter import StripeProvider
from .parsing import HANDLED_TYPES, event_facts, event_snapshot, relevant, snapshot_from_subscription
from .payouts import StripeConnectPayouts
from .rules import PLATFORM_RULES, rule_problem

CAPABILITIES = Capabilities(refund=True, cancel=True, extend=True, pause=True, paused_state=True)

__all__ = [
    "CAPABILITIES",
    "HANDLED_TYPES",
    "PLATFORM_RULES",
    "StripeConnectPayouts",
    "StripeProvider",
    "event_facts",
    "event_snapshot",
    "relevant",
    "rule_problem",
    "snapshot_from_subscription",
]

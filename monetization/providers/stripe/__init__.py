"""Stripe (the web): subscriptions, invoices, refunds, and Connect payouts to creators."""

from ..base import Capabilities
from .adapter import StripeProvider
from .parsing import (
    CONNECT,
    CONNECT_TYPES,
    HANDLED_TYPES,
    connect_relevant,
    dispute_report,
    event_facts,
    event_snapshot,
    invoice_payment,
    refund_facts,
    relevant,
    snapshot_from_subscription,
)
from .payouts import StripeConnectPayouts
from .rules import ACCESS_RULES, PLATFORM_RULES, rule_problem

CAPABILITIES = Capabilities(refund=True, cancel=True, extend=True, pause=True, paused_state=True)

__all__ = [
    "ACCESS_RULES",
    "CAPABILITIES",
    "CONNECT",
    "CONNECT_TYPES",
    "HANDLED_TYPES",
    "PLATFORM_RULES",
    "StripeConnectPayouts",
    "StripeProvider",
    "connect_relevant",
    "dispute_report",
    "event_facts",
    "event_snapshot",
    "invoice_payment",
    "refund_facts",
    "relevant",
    "rule_problem",
    "snapshot_from_subscription",
]

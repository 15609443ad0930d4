from ..base import Capabilities
from .adapter import NOTIFICATION_TYPES, PAYMENT_CODES, GooglePlayProvider, play_money, relevant, snapshot_from_v2
from .client import GoogleApiSubscriptionsV2Client, SubscriptionsV2Client

CAPABILITIES = Capabilities(refund=True, cancel=True, extend=True, paused_state=True)

__all__ = [
    "CAPABILITIES",
    "NOTIFICATION_TYPES",
    "PAYMENT_CODES",
    "GoogleApiSubscriptionsV2Client",
    "GooglePlayProvider",
    "SubscriptionsV2Client",
    "play_money",
    "relevant",
    "snapshot_from_v2",
]

from .adapter import NOTIFICATION_TYPES, PAYMENT_CODES, GooglePlayProvider, play_money, snapshot_from_v2
from .client import GoogleApiSubscriptionsV2Client, SubscriptionsV2Client

__all__ = [
    "NOTIFICATION_TYPES",
    "PAYMENT_CODES",
    "GoogleApiSubscriptionsV2Client",
    "GooglePlayProvider",
    "SubscriptionsV2Client",
    "play_money",
    "snapshot_from_v2",
]

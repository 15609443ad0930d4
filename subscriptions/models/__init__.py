from .catalog import Entitlement, Plan, Platform, Price, Product, Sku
from .grants import Grant
from .metrics import MetricsDay, RetentionCell
from .overlaps import OverlapCase
from .payments import SubscriptionPayment
from .subscriptions import DunningAttempt, Subscription

__all__ = [
    "DunningAttempt",
    "Entitlement",
    "Grant",
    "MetricsDay",
    "OverlapCase",
    "Plan",
    "Platform",
    "Price",
    "Product",
    "RetentionCell",
    "Sku",
    "Subscription",
    "SubscriptionPayment",
]

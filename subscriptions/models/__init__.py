from .catalog import Entitlement, Plan, Platform, Price, Product, Sku
from .grants import Grant
from .overlaps import OverlapCase
from .metrics import MetricsDay, RetentionCell
from .payments import SubscriptionPayment
from .subscriptions import DunningAttempt, Subscription

__all__ = [
    "DunningAttempt",
    "Entitlement",
    "Grant",
    "OverlapCase",
    "MetricsDay",
    "Plan",
    "Platform",
    "Price",
    "Product",
    "RetentionCell",
    "Sku",
    "Subscription",
    "SubscriptionPayment",
]

from .catalog import Entitlement, Plan, Platform, Price, Product, Sku
from .grants import Grant
from .overlaps import OverlapCase
from .payments import SubscriptionPayment
from .subscriptions import DunningAttempt, Subscription

__all__ = [
    "DunningAttempt",
    "Entitlement",
    "Grant",
    "OverlapCase",
    "Plan",
    "Platform",
    "Price",
    "Product",
    "Sku",
    "Subscription",
    "SubscriptionPayment",
]

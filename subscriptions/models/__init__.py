from .catalog import Entitlement, Plan, Platform, Price, Product, Sku
from .grants import Grant
from .growth import Experiment, ExperimentArm, ExperimentExposure, PromoCode, PromoRedemption
from .payments import SubscriptionPayment
from .subscriptions import DunningAttempt, Subscription

__all__ = [
    "DunningAttempt",
    "Entitlement",
    "Experiment",
    "ExperimentArm",
    "ExperimentExposure",
    "Grant",
    "Plan",
    "Platform",
    "Price",
    "Product",
    "PromoCode",
    "PromoRedemption",
    "Sku",
    "Subscription",
    "SubscriptionPayment",
]

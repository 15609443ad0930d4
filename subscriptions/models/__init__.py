from .catalog import Entitlement, Plan, Platform, Price, Product, Sku
from .grants import Grant
from .growth import Experiment, ExperimentArm, ExperimentExposure, PromoCode, PromoRedemption
from .metrics import MetricsDay, RetentionCell
from .offerings import Offering, OfferingCountry, OfferingPackage
from .overlaps import OverlapCase
from .payments import SubscriptionPayment
from .subscriptions import DunningAttempt, Subscription

__all__ = [
    "DunningAttempt",
    "Entitlement",
    "Experiment",
    "ExperimentArm",
    "ExperimentExposure",
    "Grant",
    "MetricsDay",
    "Offering",
    "OfferingCountry",
    "OfferingPackage",
    "OverlapCase",
    "Plan",
    "Platform",
    "Price",
    "Product",
    "PromoCode",
    "PromoRedemption",
    "RetentionCell",
    "Sku",
    "Subscription",
    "SubscriptionPayment",
]

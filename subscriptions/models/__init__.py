from .catalog import Entitlement, Plan, Platform, Price, Product, Sku
from .grants import Grant
from .growth import Experiment, ExperimentArm, ExperimentExposure, PromoCode, PromoRedemption
from .metrics import FinanceCarry, FinancePeriodEnd, FinanceSegmentChange, FinanceState, MetricsDay, RetentionCell
from .offerings import Offering, OfferingCountry, OfferingPackage
from .offers import IntroductoryOffer, IntroductoryOfferUse, ProductFamily
from .overlaps import OverlapCase
from .payments import SubscriptionPayment
from .price_changes import PriceChange, PriceChangePush
from .subscriptions import DunningAttempt, Subscription
from .winback import WinBackRule, WinBackTarget

__all__ = [
    "DunningAttempt",
    "Entitlement",
    "Experiment",
    "ExperimentArm",
    "ExperimentExposure",
    "FinanceCarry",
    "FinancePeriodEnd",
    "FinanceSegmentChange",
    "FinanceState",
    "Grant",
    "IntroductoryOffer",
    "IntroductoryOfferUse",
    "MetricsDay",
    "Offering",
    "OfferingCountry",
    "OfferingPackage",
    "OverlapCase",
    "Plan",
    "Platform",
    "Price",
    "PriceChange",
    "PriceChangePush",
    "Product",
    "ProductFamily",
    "PromoCode",
    "PromoRedemption",
    "RetentionCell",
    "Sku",
    "Subscription",
    "SubscriptionPayment",
    "WinBackRule",
    "WinBackTarget",
]

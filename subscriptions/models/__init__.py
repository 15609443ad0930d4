from .catalog import Entitlement, Plan, Platform, Price, Product, Sku
from .grants import Grant
from .subscriptions import Subscription

__all__ = ["Entitlement", "Grant", "Plan", "Platform", "Price", "Product", "Sku", "Subscription"]

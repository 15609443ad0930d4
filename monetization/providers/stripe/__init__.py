from .adapter import HANDLED_TYPES, StripeProvider, snapshot_from_subscription

__all__ = ["HANDLED_TYPES", "StripeProvider", "snapshot_from_subscription"]

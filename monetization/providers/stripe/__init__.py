from ..base import Capabilities
from .adapter import HANDLED_TYPES, StripeProvider, relevant, snapshot_from_subscription

CAPABILITIES = Capabilities(refund=True, cancel=True, extend=True, pause=True, paused_state=True)

__all__ = ["CAPABILITIES", "HANDLED_TYPES", "StripeProvider", "relevant", "snapshot_from_subscription"]

from ..base import Capabilities
from .adapter import AppStoreProvider, app_store_status, relevant, snapshot_from_transaction, transaction_amount

CAPABILITIES = Capabilities(extend=True)

__all__ = [
    "CAPABILITIES",
    "AppStoreProvider",
    "app_store_status",
    "relevant",
    "snapshot_from_transaction",
    "transaction_amount",
]

from .adapter import AppStoreProvider, app_store_status, snapshot_from_transaction, transaction_amount

__all__ = ["AppStoreProvider", "app_store_status", "snapshot_from_transaction", "transaction_amount"]

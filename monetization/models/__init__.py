from .api_keys import ApiKey
from .audit import AuditEvent
from .customers import Customer, Provider, ProviderIdentity
from .ledger import JournalEntry, JournalLine
from .payments import Payment
from .webhooks import WebhookEvent

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Customer",
    "JournalEntry",
    "JournalLine",
    "Payment",
    "Provider",
    "ProviderIdentity",
    "WebhookEvent",
]

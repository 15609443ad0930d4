from .api_keys import ApiKey
from .audit import AuditEvent
from .cache import CacheInvalidation
from .consumption import ConsumptionRequest
from .customers import Customer, Provider, ProviderIdentity
from .deferrals import RevenueDeferral
from .disputes import Dispute
from .finance import FinanceDirtyDay, RevenueDay
from .fx import ExchangeRate
from .idempotency import IdempotencyKey
from .ledger import JournalEntry, JournalLine
from .merges import CustomerMerge
from .outbox import EventDelivery, EventEndpoint, OutboxEvent, OutboxRelay
from .payments import Payment
from .privacy import ErasureRequest
from .reconciliation import ProviderReport, ReconciliationMismatch
from .refunds import Refund
from .webhooks import WebhookEvent

__all__ = [
    "ApiKey",
    "AuditEvent",
    "CacheInvalidation",
    "ConsumptionRequest",
    "Customer",
    "CustomerMerge",
    "Dispute",
    "ErasureRequest",
    "EventDelivery",
    "EventEndpoint",
    "ExchangeRate",
    "FinanceDirtyDay",
    "IdempotencyKey",
    "JournalEntry",
    "JournalLine",
    "OutboxEvent",
    "OutboxRelay",
    "Payment",
    "Provider",
    "ProviderIdentity",
    "ProviderReport",
    "ReconciliationMismatch",
    "Refund",
    "RevenueDay",
    "RevenueDeferral",
    "WebhookEvent",
]

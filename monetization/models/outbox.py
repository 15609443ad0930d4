"""Outbound events: the endpoints that subscribe to them, each delivery, and the relay's place in the audit trail.

The audit row is the event: a change writes its audit row in its own transaction and nothing more. The
relay (monetization.services.outbox) reads committed audit rows in commit-safe order afterwards and
makes an :class:`OutboxEvent` (the envelope as delivered and served) with its deliveries for each one the
catalogue publishes. Nothing is sent from inside the change's transaction.
"""

import os
import time
import uuid

from django.core.validators import URLValidator
from django.db import models
from kombu.utils.url import maybe_sanitize_url

from monetization import clock


def event_id_for_audit(audit_id: int) -> uuid.UUID:
    """The stable id of the event an audit row publishes: the audit id in the first 48 bits, version 8, no
    random bits, so relaying the row again (a relay killed before it moved on) makes the same id, and the
    unique index refuses the copy. Increasing with the audit id: each new id lands at the end of the index."""
    return uuid.UUID(int=(audit_id & (1 << 48) - 1) << 80 | 0x8 << 76 | 0x2 << 62)


def event_id_new() -> uuid.UUID:
    """A time-ordered UUID (version 7: Unix milliseconds in the first 48 bits, then random bits): as unique as
    a random one, but each new id lands at the end of the unique index instead of on a random page of it
    (a page written per event, which cost the sweep's bulk writes more than the events themselves).
    The database makes the same for events written in SQL: ``monetization_event_id_new()``."""
    value = (time.time_ns() // 1_000_000 & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return uuid.UUID(int=value)


class OutboxEvent(models.Model):
    """One change, as the rest of the platform hears of it: made by the relay from the audit row. Append-only.

    ``id`` orders the outbox (the pull API's cursor and the delivery order per customer);
    ``event_id`` is the stable id a consumer deduplicates on (the same on every redelivery).
    """

    event_id = models.UUIDField(default=event_id_new, unique=True, editable=False)
    type = models.CharField(max_length=64, help_text="A catalogue name, e.g. EXPIRATION")
    version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField(default=clock.now)
    # No FK index: reads go by id (cursor) or by (customer, id) below.
    customer = models.ForeignKey(
        "monetization.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    customer_external_id = models.CharField(max_length=64, blank=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    cause = models.JSONField(default=dict)
    audit_event_id = models.BigIntegerField(null=True, blank=True)
    data = models.JSONField(default=dict, blank=True)
    # NULL until the first delivery (or pull) resolves them once; kept so every redelivery sends the same body.
    entitlements = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["customer", "id"], name="outbox_customer_id_idx")]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk} ({self.customer_external_id or '-'})"


class OutboxRelay(models.Model):
    """How far the relay has read the audit trail: the (transaction id, audit id) of the last row it read.
    One row; the relay locks it, so two relays never publish the same rows twice."""

    txid = models.BigIntegerField(default=0)
    audit_id = models.BigIntegerField(default=0)
    relayed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"outbox relay at {self.txid}.{self.audit_id}"


class EventEndpoint(models.Model):
    """A URL that receives events of the listed types (empty: every type), signed with ``secret``.

    Rotation: the new secret goes in ``secret`` and the old one in ``previous_secret``; both sign
    until ``previous_secret_expires_at``, so a receiver can switch without losing a delivery.
    """

    # An HTTP receiver, or a RabbitMQ exchange: amqp://user:password@host:port/vhost?exchange=name
    # (monetization.outbox.sinks).
    url = models.CharField(max_length=500, validators=[URLValidator(schemes=["https", "http", "amqps", "amqp"])])
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, blank=True, help_text="Catalogue names; empty means all.")
    secret = models.CharField(max_length=128)
    previous_secret = models.CharField(max_length=128, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    # The last outbox id fanned out into deliveries for this endpoint.
    cursor = models.BigIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.display_url

    @property
    def display_url(self) -> str:
        """The URL without its password (a broker URL carries one)."""
        return maybe_sanitize_url(self.url)

    def wants(self, event_type: str) -> bool:
        return not self.event_types or event_type in self.event_types


class EventDelivery(models.Model):
    """One event to one endpoint: pending until the endpoint answers 2xx, parked when retries run out."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        PARKED = "parked", "Parked"

    endpoint = models.ForeignKey(EventEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(OutboxEvent, on_delete=models.PROTECT, related_name="deliveries", db_index=False)
    # Copied from the event: ordering per customer is checked on this table alone.
    customer_id = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=clock.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="uniq_delivery_endpoint_event")]
        indexes = [
            models.Index(
                fields=["endpoint", "event"],
                name="delivery_pending_idx",
                condition=models.Q(status="pending"),
            ),
            models.Index(
                fields=["endpoint", "customer_id", "event"],
                name="delivery_pending_customer_idx",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.endpoint_id} ({self.status})"

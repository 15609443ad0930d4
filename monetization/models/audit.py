from django.conf import settings
from django.db import models

from monetization import clock


class AuditEvent(models.Model):
    """One thing that happened: a staff action, a state change, a provider event applied.

    Append-only: PostgreSQL refuses UPDATE and DELETE on this table (see the
    migration), and the admin and API expose it read-only to everyone.
    ``customer`` is denormalised so a customer's timeline is one indexed scan.
    """

    class ActorKind(models.TextChoices):
        STAFF = "staff", "Staff"
        CLIENT = "client", "Client app"
        PROVIDER = "provider", "Provider event"
        SYSTEM = "system", "System task"

    occurred_at = models.DateTimeField(default=clock.now)
    # No single-column indexes on the two foreign keys: the (actor|customer, -occurred_at) indexes
    # below lead with them and serve the same lookups; every audit row written pays for each index.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    actor_kind = models.CharField(max_length=16, choices=ActorKind.choices)
    actor_label = models.CharField(max_length=200, blank=True, help_text="e.g. a webhook event id or task name")
    action = models.CharField(max_length=64, help_text="e.g. refund.request, subscription.expire")
    object_type = models.CharField(max_length=64, help_text="app_label.model")
    object_id = models.CharField(max_length=64)
    # No database foreign key on the denormalised customer: every audit row paid a deferred key check at
    # commit (a lock on the customer's row, 5-7 us a row, a sixth of the lifecycle sweep's own work), for a
    # value copied from a row that is itself constrained (a subscription's, a payment's). Customers are
    # pseudonymized, never deleted; Django's PROTECT still refuses deleting one with audit rows.
    customer = models.ForeignKey(
        "monetization.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="audit_customer_time_idx"),
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            # Staff rows only: the one reader asks for a staff member's actions (actor_id = n), and most rows
            # have no actor (sweeps, provider events, client calls): each of those paid for an entry.
            models.Index(
                fields=["actor", "-occurred_at"], name="audit_actor_time_idx", condition=models.Q(actor__isnull=False)
            ),
            models.Index(fields=["action", "-occurred_at"], name="audit_action_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}#{self.object_id}"

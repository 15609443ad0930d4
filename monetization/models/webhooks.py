from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from monetization import clock

from .customers import Provider


class WebhookEvent(FSMModelMixin, models.Model):
    """A verified provider notification, stored once and applied by a worker.

    The inbox is the idempotency boundary: (provider, event_id) is unique, so a
    redelivered notification is acknowledged without being stored or applied
    again. ``raw_body`` keeps the exact bytes the provider signed, for audits
    and for re-verification; ``payload`` is the decoded event the appliers read.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    provider = models.CharField(max_length=16, choices=Provider.choices)
    event_id = models.CharField(
        max_length=255, help_text="Stripe event id, App Store notificationUUID, Pub/Sub messageId"
    )
    event_type = models.CharField(max_length=64)
    subscription_ref = models.CharField(max_length=512, blank=True, help_text="Provider subscription id, if known")
    occurred_at = models.DateTimeField(help_text="When the provider says it happened.")
    received_at = models.DateTimeField(default=clock.now)
    payload = models.JSONField(help_text="The decoded event the appliers read.")
    raw_body = models.TextField(blank=True, help_text="The body exactly as received (what was signed).")
    status = FSMField(default=Status.RECEIVED, choices=Status.choices, protected=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, help_text="Why it was ignored, or what applying did.")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="uniq_webhook_provider_event"),
        ]
        indexes = [
            models.Index(fields=["status", "-received_at"], name="webhook_status_time_idx"),
            models.Index(fields=["subscription_ref"], name="webhook_subscription_ref_idx"),
        ]
        permissions = [("replay_webhookevent", "Can replay a webhook event")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.event_type} {self.event_id}"

    @transition(field=status, source=[Status.RECEIVED, Status.FAILED], target=Status.APPLIED)
    def mark_applied(self, note: str = ""):
        self.applied_at = clock.now()
        self.last_error = ""
        self.note = note[:200]

    @transition(field=status, source=[Status.RECEIVED, Status.FAILED], target=Status.IGNORED)
    def mark_ignored(self, note: str = ""):
        self.applied_at = clock.now()
        self.note = note[:200]

    @transition(field=status, source=[Status.RECEIVED, Status.FAILED], target=Status.FAILED)
    def mark_failed(self, error: str = ""):
        self.last_error = error[:4000]

from django.db import models

from monetization import clock

from .customers import Provider


class ConsumptionRequest(models.Model):
    """A store asks how a purchase was used before it decides a customer's refund request
    (App Store CONSUMPTION_REQUEST). Answered through the store's API where it is configured;
    otherwise queued for Support, who answer it before the store's deadline."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued for Support"
        ANSWERED = "answered", "Answered"

    provider = models.CharField(max_length=16, choices=Provider.choices)
    event_id = models.CharField(max_length=255, help_text="The notification that asked")
    transaction_id = models.CharField(max_length=255)
    original_transaction_id = models.CharField(max_length=255, blank=True)
    customer = models.ForeignKey(
        "monetization.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    payment = models.ForeignKey(
        "monetization.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.CharField(max_length=64, blank=True, help_text="Why the customer asked for a refund (Apple's code)")
    received_at = models.DateTimeField(default=clock.now)
    deadline = models.DateTimeField(help_text="The store decides without our answer after this")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answer = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["deadline"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="uniq_consumption_request_event"),
        ]
        indexes = [models.Index(fields=["status", "deadline"], name="consumption_queue_idx")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} consumption request {self.transaction_id} ({self.status})"

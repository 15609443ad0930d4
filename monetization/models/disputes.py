from django.db import models
from django_fsm import FSMField, transition
from djmoney.models.fields import MoneyField

from monetization import clock

from .state_machine import StateMachineModel


class Dispute(StateMachineModel, models.Model):
    """A chargeback on a payment, as the provider reports it (Stripe ``charge.dispute.*``).

    Lifecycle: needs_response -> under_review -> won | lost (needs_response -> won | lost
    when the provider decides without evidence). The money moves with the provider's
    balance transactions (funds withdrawn, funds reinstated), each posted once to the
    ledger; ``evidence_due_by`` orders Finance's queue.
    """

    class Status(models.TextChoices):
        NEEDS_RESPONSE = "needs_response", "Needs response"
        UNDER_REVIEW = "under_review", "Under review"
        WON = "won", "Won"
        LOST = "lost", "Lost"

    OPEN = (Status.NEEDS_RESPONSE, Status.UNDER_REVIEW)

    provider = models.CharField(max_length=32)
    provider_dispute_id = models.CharField(max_length=255)
    payment = models.ForeignKey("monetization.Payment", on_delete=models.PROTECT, related_name="disputes")
    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="disputes")
    amount = MoneyField(max_digits=19, decimal_places=4, default_currency="USD")
    withdrawn = MoneyField(max_digits=19, decimal_places=4, default_currency="USD", default=0)
    fees = MoneyField(max_digits=19, decimal_places=4, default_currency="USD", default=0)
    reason = models.CharField(max_length=64, blank=True)
    status = FSMField(default=Status.NEEDS_RESPONSE, choices=Status.choices, protected=True, db_index=True)
    evidence_due_by = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(default=clock.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["evidence_due_by", "id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_dispute_id"], name="uniq_dispute_provider_id"),
        ]
        indexes = [
            models.Index(fields=["status", "evidence_due_by"], name="dispute_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.provider_dispute_id} {self.amount} ({self.status})"

    @transition(field=status, source=Status.NEEDS_RESPONSE, target=Status.UNDER_REVIEW)
    def review(self):
        pass

    @transition(field=status, source=[Status.NEEDS_RESPONSE, Status.UNDER_REVIEW], target=Status.WON)
    def win(self):
        self.closed_at = clock.now()

    @transition(field=status, source=[Status.NEEDS_RESPONSE, Status.UNDER_REVIEW], target=Status.LOST)
    def lose(self):
        self.closed_at = clock.now()

from django.db import models
from django_fsm import FSMField, transition
from djmoney.models.fields import MoneyField

from monetization import clock

from .customers import Provider
from .state_machine import StateMachineModel


class Payment(StateMachineModel, models.Model):
    """Money a customer paid (or tried to pay) through a provider.

    What it paid for is the product app's to record (``subscriptions.SubscriptionPayment``
    points at the payment): the core knows no product.
    """

    class Kind(models.TextChoices):
        INITIAL = "initial", "Initial"
        RENEWAL = "renewal", "Renewal"
        UPGRADE = "upgrade", "Upgrade"
        SEAT_CHANGE = "seat_change", "Seat change"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
        REFUNDED = "refunded", "Refunded"

    # No index of its own: payment_customer_time_idx (customer, -occurred_at) serves every read by customer
    # and the foreign key's checks, and a second one only cost each recorded payment an index insert.
    customer = models.ForeignKey(
        "monetization.Customer", on_delete=models.PROTECT, related_name="payments", db_index=False
    )
    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_reference = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.INITIAL)
    amount = MoneyField(max_digits=19, decimal_places=4, default_currency="USD")
    fee = MoneyField(max_digits=19, decimal_places=4, default_currency="USD", default=0)
    tax = MoneyField(max_digits=19, decimal_places=4, default_currency="USD", default=0)
    commission = MoneyField(
        max_digits=19,
        decimal_places=4,
        default_currency="USD",
        default=0,
        help_text="What the store keeps of the sale at the rate in force (monetization.commission).",
    )
    refunded = MoneyField(
        max_digits=19,
        decimal_places=4,
        default_currency="USD",
        default=0,
        help_text="Total refunded so far; only ever changed under a row lock.",
    )
    status = FSMField(default=Status.PENDING, choices=Status.choices, protected=True, db_index=True)
    failure_code = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField(default=clock.now, help_text="When the provider says it happened.")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "provider_reference"], name="uniq_payment_provider_ref"),
            models.CheckConstraint(condition=models.Q(refunded__gte=0), name="payment_refunded_non_negative"),
            models.CheckConstraint(
                condition=models.Q(refunded__lte=models.F("amount")), name="payment_refund_not_above_amount"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="payment_customer_time_idx"),
            # Finance's daily snapshots read the payments of a range of days (and the periods that
            # may cover it): without it, refreshing one day scans every payment ever taken.
            models.Index(fields=["occurred_at"], name="payment_occurred_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.provider_reference} {self.amount}"

    @transition(field=status, source=Status.PENDING, target=Status.SUCCEEDED)
    def succeed(self):
        pass

    @transition(field=status, source=Status.PENDING, target=Status.FAILED)
    def fail(self, code: str = ""):
        self.failure_code = code

    @transition(field=status, source=[Status.SUCCEEDED, Status.PARTIALLY_REFUNDED], target=Status.PARTIALLY_REFUNDED)
    def refund_partially(self):
        pass

    @transition(field=status, source=[Status.SUCCEEDED, Status.PARTIALLY_REFUNDED], target=Status.REFUNDED)
    def refund_fully(self):
        pass

    @transition(field=status, source=[Status.REFUNDED, Status.PARTIALLY_REFUNDED], target=Status.SUCCEEDED)
    def refund_reversed_fully(self):
        """Every refund on it was taken back by the provider."""

    @transition(field=status, source=[Status.REFUNDED, Status.PARTIALLY_REFUNDED], target=Status.PARTIALLY_REFUNDED)
    def refund_reversed_partially(self):
        pass

from django.db import models
from django.db.models import F, Q
from djmoney.models.fields import CurrencyField


class RevenueDeferral(models.Model):
    """Revenue of a payment that pays for several months, held in ``liability:deferred_revenue`` and
    released into its revenue account day by day over the service period (``services/revenue_recognition``).

    ``amount`` is the payment's revenue (net of tax); ``recognized`` has been released into revenue up to
    ``recognized_through``; ``reversed`` left with refunds and lost disputes. What remains
    (``amount - recognized - reversed``) is spread evenly over what is left of the service period.
    """

    payment = models.OneToOneField("monetization.Payment", on_delete=models.PROTECT, related_name="deferral")
    stream = models.CharField(max_length=32)
    currency = CurrencyField()
    amount = models.DecimalField(max_digits=19, decimal_places=4)
    recognized = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    reversed = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    service_start = models.DateTimeField()
    service_end = models.DateTimeField()
    recognized_through = models.DateTimeField()
    # What is left is spread from ``spread_from`` (the start, or the last refund or lost dispute), when
    # ``spread_base`` had been recognized: recognition is cumulative from there, so daily rounding never drifts.
    spread_from = models.DateTimeField()
    spread_base = models.DecimalField(max_digits=19, decimal_places=4, default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(recognized__gte=0, reversed__gte=0, amount__gte=F("recognized") + F("reversed")),
                name="deferral_never_over_released",
            ),
            models.CheckConstraint(condition=Q(service_end__gt=F("service_start")), name="deferral_period_forward"),
        ]
        indexes = [
            # The daily job reads only deferrals with something left to recognize.
            models.Index(
                fields=["recognized_through"],
                name="deferral_open_idx",
                condition=Q(amount__gt=F("recognized") + F("reversed")),
            ),
        ]

    def __str__(self) -> str:
        return f"Deferral of payment {self.payment_id}: {self.recognized}/{self.amount} {self.currency}"

    @property
    def remaining(self):
        return self.amount - self.recognized - self.reversed

from django.db import models


class SubscriptionPayment(models.Model):
    """What a payment paid for: one subscription's charge (initial, renewal, upgrade, seats).

    The money core's Payment knows no product; this row points at it from here, so the
    dependency runs one way. Written once, in the transaction that records the payment
    (``subscription_payment_record``); a payment pays for at most one subscription.
    """

    payment = models.OneToOneField(
        "monetization.Payment", primary_key=True, on_delete=models.PROTECT, related_name="subscription_link"
    )
    subscription = models.ForeignKey(
        "subscriptions.Subscription", on_delete=models.PROTECT, related_name="payment_links"
    )

    class Meta:
        verbose_name = "subscription payment"

    def __str__(self) -> str:
        return f"payment {self.payment_id} of subscription {self.subscription_id}"

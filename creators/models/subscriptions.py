from django.db import models

from monetization import clock


class CreatorSubscriptionLink(models.Model):
    """Makes a plan (of a Product of kind ``creator``) the plan fans buy to subscribe to one creator."""

    plan = models.OneToOneField("subscriptions.Plan", on_delete=models.PROTECT, related_name="creator_link")
    creator = models.ForeignKey("creators.CreatorAccount", on_delete=models.PROTECT, related_name="subscription_links")
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return f"{self.plan_id} -> creator {self.creator_id}"


class CreatorSubscriptionShare(models.Model):
    """The creator's share of one fan payment (exactly once per payment)."""

    payment = models.OneToOneField("monetization.Payment", on_delete=models.PROTECT, related_name="creator_share")
    creator = models.ForeignKey("creators.CreatorAccount", on_delete=models.PROTECT, related_name="subscription_shares")
    basis = models.DecimalField(max_digits=19, decimal_places=4, help_text="Payment amount net of tax")
    amount = models.DecimalField(max_digits=19, decimal_places=4)
    currency = models.CharField(max_length=3)
    lifetime_basis_before = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    occurred_at = models.DateTimeField(default=clock.now)

    class Meta:
        indexes = [models.Index(fields=["creator", "occurred_at"], name="creator_share_time_idx")]

    def __str__(self) -> str:
        return f"{self.amount} {self.currency} to creator {self.creator_id}"


class CreatorClawback(models.Model):
    """Part of a creator's share taken back because the fan payment was refunded or a dispute of it lost.

    One row per refund or lost dispute (``reference``: ``refund:<id>`` / ``dispute:<provider id>``).
    ``payment_amount`` is the part of the payment reversed; ``amount`` the share taken back, so that the
    clawbacks of a payment sum to exactly its share once the whole payment is reversed. The cycle of the
    month it occurred in subtracts it from the creator's earning (a negative total is carried forward).
    """

    class Kind(models.TextChoices):
        REFUND = "refund", "Refund"
        DISPUTE = "dispute", "Lost dispute"

    reference = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    share = models.ForeignKey(CreatorSubscriptionShare, on_delete=models.PROTECT, related_name="clawbacks")
    creator = models.ForeignKey("creators.CreatorAccount", on_delete=models.PROTECT, related_name="clawbacks")
    payment_amount = models.DecimalField(max_digits=19, decimal_places=4)
    amount = models.DecimalField(max_digits=19, decimal_places=4)
    currency = models.CharField(max_length=3)
    occurred_at = models.DateTimeField(default=clock.now)

    class Meta:
        indexes = [models.Index(fields=["creator", "occurred_at"], name="creator_clawback_time_idx")]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gte=0), name="clawback_amount_nonnegative")]

    def __str__(self) -> str:
        return f"-{self.amount} {self.currency} from creator {self.creator_id} ({self.reference})"

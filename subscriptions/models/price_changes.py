"""A plan's price change in one country on one platform, and whether it moves existing subscribers."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from djmoney.models.fields import MoneyField

from monetization import clock

from .catalog import Plan, Platform, Price


class PriceChange(models.Model):
    """Written by subscriptions.services.price_changes.price_change_schedule with the new Price version."""

    class ExistingSubscribers(models.TextChoices):
        KEEP = "keep", "Keep their price"
        MOVE = "move", "Move at their first renewal on or after the effective date (web only)"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="price_changes")
    platform = models.CharField(max_length=8, choices=Platform.choices)
    country = models.CharField(max_length=2)
    amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    price = models.OneToOneField(Price, on_delete=models.PROTECT, related_name="change")
    existing_subscribers = models.CharField(
        max_length=8, choices=ExistingSubscribers.choices, default=ExistingSubscribers.KEEP
    )
    announced_at = models.DateTimeField(default=clock.now)
    effective_at = models.DateTimeField()
    reason = models.CharField(max_length=2000)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    stripe_price_id = models.CharField(
        max_length=128,
        blank=True,
        help_text="Web: the Stripe price existing subscribers move to at renewal (a move pushes it to Stripe)",
    )

    class Meta:
        ordering = ["-effective_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(effective_at__gt=models.F("announced_at")), name="price_change_after_announcement"
            ),
            # The stores move their subscribers themselves, with consent: never us.
            models.CheckConstraint(
                condition=models.Q(existing_subscribers="keep") | models.Q(platform="web"),
                name="price_change_moves_web_only",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} {self.platform} {self.country} {self.amount} from {self.effective_at:%Y-%m-%d}"


class PriceChangePush(models.Model):
    """A web subscription a price change moves: claimed once (unique), pushed to Stripe once (``pushed_at``);
    a push interrupted between the two is retried under the same idempotency key."""

    change = models.ForeignKey(PriceChange, on_delete=models.PROTECT, related_name="pushes")
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+")
    claimed_at = models.DateTimeField(default=clock.now)
    pushed_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["change", "subscription"], name="uniq_price_change_push"),
        ]

    def __str__(self) -> str:
        return f"{self.change} -> subscription {self.subscription_id}"

    @property
    def idempotency_key(self) -> str:
        return f"price-change-push-{self.pk}"

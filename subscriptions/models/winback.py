"""Win-back: rules that pick lapsed and churned customers, the offer each platform makes them, and who was
targeted when (with whether they came back within the window)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

from monetization import clock

from .catalog import Product


def default_price_reasons() -> list[str]:
    # CancelReason: the customer said too expensive (Stripe feedback, Play survey), or did not accept a price
    # increase (App Store expirationIntent 3 / EXPIRED PRICE_INCREASE, Play's unaccepted opt-in increase).
    return ["too_expensive", "price_increase"]


class WinBackRule(models.Model):
    """Whom to win back, and with what on each platform. A customer is targeted once per rule per window."""

    class Reason(models.TextChoices):
        LAPSED = "lapsed", "Lapsed N days ago"
        CANCELLED_FOR_PRICE = "cancelled_for_price", "Cancelled for price"
        BILLING_ISSUE = "billing_issue", "Billing issue not recovered"

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    reason = models.CharField(max_length=24, choices=Reason.choices)
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+", help_text="Blank: every product"
    )
    lapsed_days = models.PositiveSmallIntegerField(help_text="Days since the subscription ended")
    window_days = models.PositiveSmallIntegerField(
        default=30, help_text="Targeted at most once per window; conversion counts within it"
    )
    cancel_reasons = ArrayField(
        models.CharField(max_length=64),
        default=default_price_reasons,
        blank=True,
        help_text="Cancelled for price: the cancel reasons that mean price",
    )
    apple_win_back_offer_id = models.CharField(max_length=64, blank=True, help_text="App Store win-back offer id")
    play_offer_id = models.CharField(max_length=64, blank=True, help_text="Google Play offer id")
    stripe_coupon_id = models.CharField(max_length=255, blank=True, help_text="Stripe coupon")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(condition=models.Q(window_days__gt=0), name="win_back_window_positive"),
        ]

    def __str__(self) -> str:
        return self.key

    def offers(self) -> dict[str, dict]:
        return {
            "ios": {"win_back_offer_id": self.apple_win_back_offer_id},
            "android": {"offer_id": self.play_offer_id},
            "web": {"coupon_id": self.stripe_coupon_id},
        }


class WinBackTarget(models.Model):
    """A customer a rule picked in one window, the subscription that lapsed, and whether they came back."""

    rule = models.ForeignKey(WinBackRule, on_delete=models.PROTECT, related_name="targets")
    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    subscription = models.ForeignKey("subscriptions.Subscription", on_delete=models.PROTECT, related_name="+")
    window = models.PositiveIntegerField(help_text="Window number: days since the epoch // the rule's window")
    targeted_at = models.DateTimeField()
    window_ends_at = models.DateTimeField()
    converted_at = models.DateTimeField(null=True, blank=True, help_text="Resubscribed within the window")

    class Meta:
        ordering = ["-targeted_at"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "customer", "window"], name="uniq_win_back_target_per_window"),
        ]
        indexes = [
            models.Index(fields=["rule", "customer", "targeted_at"], name="win_back_target_recent_idx"),
            models.Index(
                fields=["window_ends_at"],
                name="win_back_target_open_idx",
                condition=models.Q(converted_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_id}:{self.customer_id}@{self.window}"

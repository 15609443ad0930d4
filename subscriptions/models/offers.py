"""Offers in the catalog: product families, introductory offers per platform, and who used one.

One introductory offer per customer per product family, whatever the store: a family is the App
Store's subscription group (and the same tiers on Play and the web), and a use on any platform
blocks the offer on the other two.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from djmoney.models.fields import MoneyField

from monetization import clock
from monetization.models import Provider

from .catalog import Plan, Platform, Product


class ProductFamily(models.Model):
    """Products that share one introductory offer per customer (Apple: one subscription group)."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    products = models.ManyToManyField(Product, related_name="families")
    apple_subscription_group_id = models.CharField(
        max_length=64, blank=True, help_text="App Store Connect subscription group id"
    )

    class Meta:
        ordering = ["key"]
        verbose_name_plural = "product families"

    def __str__(self) -> str:
        return self.name


class IntroductoryOffer(models.Model):
    """A free trial or introductory price for a plan on one platform, as the store sells it.

    App Store: the introductory offer set on the product in App Store Connect (per subscription group).
    Google Play: an offer on the plan's base plan (``play_offer_id``, with its tags).
    Web: a Stripe trial (free trial) or a Stripe coupon (introductory price).
    """

    class PaymentMode(models.TextChoices):
        FREE_TRIAL = "free_trial", "Free trial"
        PAY_AS_YOU_GO = "pay_as_you_go", "Introductory price per period"
        PAY_UP_FRONT = "pay_up_front", "Introductory price paid up front"

    class Unit(models.TextChoices):
        DAY = "day", "Days"
        WEEK = "week", "Weeks"
        MONTH = "month", "Months"
        YEAR = "year", "Years"

    family = models.ForeignKey(ProductFamily, on_delete=models.PROTECT, related_name="introductory_offers")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="introductory_offers")
    platform = models.CharField(max_length=8, choices=Platform.choices)
    payment_mode = models.CharField(max_length=16, choices=PaymentMode.choices)
    duration = models.PositiveSmallIntegerField(help_text="How many units the offer lasts (or periods it repeats)")
    duration_unit = models.CharField(max_length=8, choices=Unit.choices, default=Unit.DAY)
    price = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD", help_text="Blank: free"
    )
    countries = ArrayField(
        models.CharField(max_length=2), default=list, blank=True, help_text="ISO alpha-2 codes; empty: every country"
    )
    play_offer_id = models.CharField(max_length=64, blank=True, help_text="Google Play offer id on the base plan")
    play_offer_tags = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    stripe_coupon_id = models.CharField(max_length=255, blank=True, help_text="Stripe coupon (introductory price)")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["family", "plan", "platform"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "platform"], condition=models.Q(is_active=True), name="uniq_active_intro_offer"
            ),
            models.CheckConstraint(
                condition=models.Q(payment_mode="free_trial", price__isnull=True)
                | (~models.Q(payment_mode="free_trial") & models.Q(price__isnull=False)),
                name="intro_offer_free_iff_trial",
            ),
            models.CheckConstraint(condition=models.Q(duration__gt=0), name="intro_offer_duration_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} {self.platform} {self.get_payment_mode_display()}"

    def save(self, *args, **kwargs):
        self.countries = sorted({c.strip().upper() for c in self.countries if c.strip()})
        super().save(*args, **kwargs)


class IntroductoryOfferUse(models.Model):
    """A customer's subscription started under an introductory offer or free trial, as the provider said.

    Written once per subscription from provider events and purchases (App Store offerType 1 /
    offerDiscountType, Play offer phase or an offer id the catalog knows, Stripe trial or intro coupon).
    """

    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    subscription = models.OneToOneField(
        "subscriptions.Subscription", on_delete=models.PROTECT, related_name="introductory_offer_use"
    )
    provider = models.CharField(max_length=16, choices=Provider.choices)
    offer_id = models.CharField(max_length=255, blank=True, help_text="Play offer id or Stripe coupon, if any")
    free_trial = models.BooleanField(default=False)
    used_at = models.DateTimeField()
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-used_at"]
        indexes = [models.Index(fields=["customer", "product"], name="intro_offer_use_customer_idx")]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.product_id} {self.provider}"

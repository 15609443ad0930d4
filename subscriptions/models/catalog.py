from django.db import models
from djmoney.models.fields import MoneyField

from monetization import clock


class Platform(models.TextChoices):
    IOS = "ios", "iOS (App Store)"
    ANDROID = "android", "Android (Google Play)"
    WEB = "web", "Web (Stripe)"


class Entitlement(models.Model):
    """A feature a customer may have, named by a stable key the client apps check."""

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class Product(models.Model):
    class Kind(models.TextChoices):
        CONSUMER = "consumer", "Consumer subscription"
        ORGANIZATION = "organization", "Verified organization"
        CREATOR = "creator", "Creator subscription"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CONSUMER)
    description = models.TextField(blank=True)
    entitlements = models.ManyToManyField(Entitlement, related_name="products", blank=True)
    rank = models.PositiveSmallIntegerField(default=0, help_text="Higher is a higher tier (upgrade vs downgrade).")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["kind", "rank", "code"]

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    class Interval(models.TextChoices):
        MONTH = "month", "Monthly"
        YEAR = "year", "Annual"

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="plans")
    code = models.SlugField(max_length=64, unique=True)
    interval = models.CharField(max_length=8, choices=Interval.choices)
    interval_count = models.PositiveSmallIntegerField(default=1)
    trial_days = models.PositiveSmallIntegerField(default=0)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["product__rank", "interval"]

    def __str__(self) -> str:
        return f"{self.product.name} ({self.get_interval_display()})"


class Sku(models.Model):
    """How a store sells a plan: App Store product id; Play product id + base plan; Stripe price id."""

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="skus")
    platform = models.CharField(max_length=8, choices=Platform.choices)
    store_product_id = models.CharField(max_length=128, help_text="App Store / Play product id, or Stripe price id")
    base_plan_id = models.CharField(max_length=64, blank=True, help_text="Google Play base plan id")
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name = "SKU"
        constraints = [
            models.UniqueConstraint(
                fields=["platform", "store_product_id", "base_plan_id"], name="uniq_sku_per_platform"
            ),
            models.UniqueConstraint(fields=["plan", "platform"], name="uniq_plan_platform_sku"),
        ]

    def __str__(self) -> str:
        suffix = f":{self.base_plan_id}" if self.base_plan_id else ""
        return f"{self.platform} {self.store_product_id}{suffix}"


class Price(models.Model):
    """A plan's price in one country, valid over a date range.

    ``component`` separates an organization's base price from its per-seat price.
    """

    class Component(models.TextChoices):
        BASE = "base", "Base"
        SEAT = "seat", "Per seat"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="prices")
    platform = models.CharField(max_length=8, choices=Platform.choices, blank=True, help_text="Blank: every platform")
    country = models.CharField(max_length=2, help_text="ISO 3166-1 alpha-2")
    component = models.CharField(max_length=8, choices=Component.choices, default=Component.BASE)
    amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    valid_from = models.DateTimeField(default=clock.now)
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["plan", "country", "-valid_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "platform", "country", "component", "valid_from"], name="uniq_price_version"
            ),
            models.CheckConstraint(
                condition=models.Q(valid_until__isnull=True) | models.Q(valid_until__gt=models.F("valid_from")),
                name="price_validity_ordered",
            ),
        ]
        indexes = [models.Index(fields=["country", "valid_from"], name="price_country_idx")]

    def __str__(self) -> str:
        return f"{self.plan.code} {self.country} {self.amount}"

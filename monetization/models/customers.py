from django.contrib.postgres.indexes import GinIndex, OpClass
from django.db import models
from django.db.models.functions import Upper

from monetization import clock


class Provider(models.TextChoices):
    APP_STORE = "app_store", "App Store"
    GOOGLE_PLAY = "google_play", "Google Play"
    STRIPE = "stripe", "Stripe"
    INTERNAL = "internal", "Internal"


class Customer(models.Model):
    """A platform account that buys, is granted, or earns."""

    external_id = models.CharField(max_length=64, unique=True, help_text="The platform's account id.")
    handle = models.CharField(max_length=64, db_index=True)
    email = models.EmailField(blank=True, db_index=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    created_at = models.DateTimeField(default=clock.now, db_index=True)

    class Meta:
        ordering = ["-id"]
        # Support searches part of a handle or e-mail in any case: trigram indexes on the
        # UPPER() that ``icontains`` compares, so the search is an index scan (selectors_support.customer_find).
        # The whole handle or e-mail in any case (``iexact``) gets B-trees on the same UPPER(): a trigram
        # index can answer ``=`` too, but reads every row sharing a common trigram (10-40 ms on 1M rows).
        indexes = [
            GinIndex(OpClass(Upper("handle"), name="gin_trgm_ops"), name="customer_handle_trgm_idx"),
            GinIndex(OpClass(Upper("email"), name="gin_trgm_ops"), name="customer_email_trgm_idx"),
            models.Index(Upper("handle"), name="customer_handle_upper_idx"),
            models.Index(Upper("email"), name="customer_email_upper_idx"),
        ]

    def __str__(self) -> str:
        return f"@{self.handle} ({self.external_id})"


class ProviderIdentity(models.Model):
    """How a payment provider knows a customer (one customer, many identities)."""

    class Kind(models.TextChoices):
        ORIGINAL_TRANSACTION_ID = "original_transaction_id", "App Store original transaction id"
        APP_ACCOUNT_TOKEN = "app_account_token", "App Store app account token"
        OBFUSCATED_ACCOUNT_ID = "obfuscated_account_id", "Google Play obfuscated account id"
        PURCHASE_TOKEN = "purchase_token", "Google Play purchase token"
        CUSTOMER_ID = "customer_id", "Stripe customer id"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    provider = models.CharField(max_length=16, choices=Provider.choices)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    value = models.CharField(max_length=512)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "kind", "value"], name="uniq_provider_identity"),
        ]
        # Support looks customers up by any provider id without knowing which one it is.
        indexes = [models.Index(fields=["value"], name="provider_identity_value_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"

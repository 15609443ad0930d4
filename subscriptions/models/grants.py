from django.conf import settings
from django.db import models

from monetization import clock


class Grant(models.Model):
    """Complimentary access to an entitlement or a whole product, given by staff."""

    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="grants")
    entitlement = models.ForeignKey(
        "subscriptions.Entitlement", null=True, blank=True, on_delete=models.PROTECT, related_name="grants"
    )
    product = models.ForeignKey(
        "subscriptions.Product", null=True, blank=True, on_delete=models.PROTECT, related_name="grants"
    )
    starts_at = models.DateTimeField(default=clock.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Blank: until revoked")
    reason = models.TextField()
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revoke_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(entitlement__isnull=False, product__isnull=True)
                    | models.Q(entitlement__isnull=True, product__isnull=False)
                ),
                name="grant_entitlement_xor_product",
            ),
            models.CheckConstraint(
                condition=models.Q(ends_at__isnull=True) | models.Q(ends_at__gt=models.F("starts_at")),
                name="grant_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["customer", "revoked_at"], name="grant_customer_idx")]
        permissions = [
            ("grant_entitlement", "Can grant complimentary access"),
            ("revoke_grant", "Can revoke a grant"),
        ]

    def __str__(self) -> str:
        return f"Grant {self.entitlement or self.product} to {self.customer_id}"

    @property
    def is_active(self) -> bool:
        now = clock.now()
        return self.revoked_at is None and self.starts_at <= now and (self.ends_at is None or self.ends_at > now)

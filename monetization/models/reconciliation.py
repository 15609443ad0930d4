from django.conf import settings
from django.db import models

from monetization import clock


class ProviderReport(models.Model):
    """A file a provider gave us of what it paid (Stripe balance transactions, a Play earnings report).

    Imported once: the file's digest is unique, so importing it again finds the first import.
    """

    provider = models.CharField(max_length=16)
    kind = models.CharField(max_length=48, help_text="The report's layout (stripe_balance, play_earnings).")
    name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, unique=True)
    lines = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    mismatches = models.PositiveIntegerField(default=0)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    imported_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-imported_at", "-id"]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.name}"


class ReconciliationMismatch(models.Model):
    """One line where a provider's report and our books disagree, in Finance's queue until resolved."""

    class Kind(models.TextChoices):
        MISSING_HERE = "missing_here", "In the report, not in our books"
        MISSING_THERE = "missing_there", "In our books, not in the report"
        AMOUNT = "amount", "Amount differs"
        FEE = "fee", "Fee differs"
        COMMISSION = "commission", "Commission differs"
        TAX = "tax", "Tax differs"
        PROCEEDS = "proceeds", "Proceeds differ"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    report = models.ForeignKey(ProviderReport, on_delete=models.PROTECT, related_name="mismatch_rows")
    provider = models.CharField(max_length=16)
    reference = models.CharField(max_length=255, help_text="The provider's id of the payment or refund.")
    line_kind = models.CharField(max_length=16, help_text="payment or refund")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    currency = models.CharField(max_length=3)
    ours = models.DecimalField(max_digits=19, decimal_places=4, null=True, blank=True)
    theirs = models.DecimalField(max_digits=19, decimal_places=4, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN, db_index=True)
    resolution = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["status", "-created_at", "-id"]
        verbose_name_plural = "reconciliation mismatches"
        permissions = [("resolve_reconciliationmismatch", "Can resolve a reconciliation mismatch")]
        constraints = [
            models.UniqueConstraint(
                fields=["report", "reference", "line_kind", "kind"], name="uniq_mismatch_per_report_line"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.reference}: {self.get_kind_display()}"

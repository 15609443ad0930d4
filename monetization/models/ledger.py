from django.db import models
from djmoney.models.fields import CurrencyField

from monetization import clock


class JournalEntry(models.Model):
    """A balanced posting: per currency, the signed amounts of its lines sum to zero.

    ``key`` makes posting exactly-once: the same business event (a payment
    captured, a refund succeeded, a payout paid) always derives the same key,
    so a retried task cannot post twice. Append-only at the database level.
    """

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, db_index=True)
    memo = models.CharField(max_length=255, blank=True)
    posted_at = models.DateTimeField(default=clock.now, db_index=True)
    customer = models.ForeignKey(
        "monetization.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    source_type = models.CharField(max_length=64, blank=True)
    source_id = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name_plural = "journal entries"
        ordering = ["-posted_at", "-id"]
        indexes = [models.Index(fields=["source_type", "source_id"], name="journal_source_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.key}"


class JournalLine(models.Model):
    """One leg of an entry. ``amount`` in major units, signed: debit > 0, credit < 0."""

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=19, decimal_places=4)
    currency = CurrencyField(default="USD")

    class Meta:
        indexes = [
            models.Index(fields=["account", "currency"], name="journal_line_account_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.amount} {self.currency}"

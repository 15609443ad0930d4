from django.db import models


class RevenueDay(models.Model):
    """One day's revenue for one provider and currency (a snapshot; definitions: ``selectors_finance``).

    Written only set-based by ``services.finance_snapshots`` (upserted per day, rows of a segment
    that no longer has any payment removed); the Finance page and the staff metrics read nothing else.
    """

    day = models.DateField()
    provider = models.CharField(max_length=16)
    currency = models.CharField(max_length=3)
    payments = models.IntegerField(default=0)
    refunds_count = models.IntegerField(default=0)
    gross = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    refunds = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    commission = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    fees = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    tax = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "provider", "currency"], name="uniq_revenue_day_segment"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.provider} {self.currency}"


class FinanceDirtyDay(models.Model):
    """A mark on a past day a late event changed (a payment recorded late, a refund of an earlier
    payment): the next snapshot refresh recomputes it and the days its service period covers, then
    removes the marks it read.

    One row per mark, so a day may hold several: marking is a plain insert that never waits on a
    refresh (a refresh can run for minutes, and the webhook applying a late refund must not wait for
    it), and a mark made while a refresh runs is not one it read, so it stays for the next."""

    day = models.DateField(db_index=True)
    marked_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.day} (dirty since {self.marked_at:%Y-%m-%d %H:%M})"

from django.db import models

MONEY = {"max_digits": 19, "decimal_places": 4, "default": 0}


class MetricsDay(models.Model):
    """One day's subscription metrics for one segment: product, plan, platform, provider, country and
    currency (a snapshot; the definitions are in ``subscriptions.selectors_finance``).

    Every figure is additive across segments, so any cut (or the total) is a ``GROUP BY`` of these rows.
    Amounts are in the segment's currency. A trial has no currency: its rows have ``currency=''``.
    Written only set-based by ``services.finance_snapshots``.
    """

    day = models.DateField()
    product = models.CharField(max_length=64)
    plan = models.CharField(max_length=64)
    platform = models.CharField(max_length=16)
    provider = models.CharField(max_length=16)
    country = models.CharField(max_length=2)
    currency = models.CharField(max_length=3)
    active = models.IntegerField(default=0)
    mrr = models.DecimalField(**MONEY)
    mrr_start = models.DecimalField(**MONEY)
    new = models.DecimalField(**MONEY)
    reactivation = models.DecimalField(**MONEY)
    expansion = models.DecimalField(**MONEY)
    contraction = models.DecimalField(**MONEY)
    churn = models.DecimalField(**MONEY)
    new_count = models.IntegerField(default=0)
    reactivation_count = models.IntegerField(default=0)
    churn_count = models.IntegerField(default=0)
    trials_started = models.IntegerField(default=0)
    trials_ended = models.IntegerField(default=0)
    trials_converted = models.IntegerField(default=0)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "product", "plan", "platform", "provider", "country", "currency"],
                name="uniq_metrics_day_segment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.plan} {self.platform} {self.country} {self.currency}"


class RetentionCell(models.Model):
    """A retention cohort's cell: of the ``size`` subscriptions first paid in ``cohort`` (a month),
    ``kept`` were still paid for ``offset`` months after their first payment (a snapshot)."""

    cohort = models.DateField()
    offset = models.IntegerField()
    size = models.IntegerField()
    kept = models.IntegerField()
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cohort", "offset"], name="uniq_retention_cell")]

    def __str__(self) -> str:
        return f"{self.cohort:%Y-%m} +{self.offset}: {self.kept}/{self.size}"

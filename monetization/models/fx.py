from django.db import models

from monetization import clock


class ExchangeRate(models.Model):
    """A daily reference rate: one ``base`` buys ``rate`` units of ``currency`` on ``day`` (ECB: base EUR)."""

    day = models.DateField()
    base = models.CharField(max_length=3)
    currency = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=20, decimal_places=10)
    source = models.CharField(max_length=32, help_text="Where the rate came from (ecb, ...)")
    loaded_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-day", "currency"]
        constraints = [
            models.UniqueConstraint(fields=["base", "currency", "day"], name="uniq_fx_rate_day"),
            models.CheckConstraint(condition=models.Q(rate__gt=0), name="fx_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"1 {self.base} = {self.rate} {self.currency} on {self.day}"

"""Offerings: the paywall a client shows, as a catalog object staff edit.

An offering is an ordered list of packages (a plan, on every platform or one); the client renders
the packages whose plan is sold on its platform and priced in its country. One offering is the
current one; a country may be given another; a price experiment's arm may point at one (then its
customers see that offering, see ExperimentArm.paywall).
"""

from __future__ import annotations

from django.db import models

from monetization import clock

from .catalog import Platform


class Offering(models.Model):
    key = models.SlugField(max_length=64, unique=True, help_text="What the client names it by (e.g. default, sale).")
    name = models.CharField(max_length=100)
    is_current = models.BooleanField(
        default=False, help_text="Shown wherever no country override or experiment arm says otherwise."
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="Paywall copy and layout the client renders.")
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"], condition=models.Q(is_current=True), name="uniq_current_offering"
            ),
        ]

    def __str__(self) -> str:
        return self.key


class OfferingPackage(models.Model):
    """One tile of the paywall: a plan, in the offering's order."""

    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="packages")
    key = models.SlugField(max_length=64, help_text="What the client names the tile by (e.g. annual, monthly).")
    position = models.PositiveSmallIntegerField(default=0)
    plan = models.ForeignKey("subscriptions.Plan", on_delete=models.PROTECT, related_name="+")
    platform = models.CharField(max_length=8, choices=Platform.choices, blank=True, help_text="Blank: every platform")

    class Meta:
        ordering = ["offering", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["offering", "key", "platform"], name="uniq_offering_package_key"),
        ]

    def __str__(self) -> str:
        return f"{self.offering_id}:{self.key}"


class OfferingCountry(models.Model):
    """A country shown another offering than the current one."""

    country = models.CharField(max_length=2, unique=True, help_text="ISO 3166-1 alpha-2")
    offering = models.ForeignKey(Offering, on_delete=models.CASCADE, related_name="countries")

    class Meta:
        ordering = ["country"]
        verbose_name = "country override"
        verbose_name_plural = "country overrides"

    def __str__(self) -> str:
        return f"{self.country}: {self.offering_id}"

    def save(self, *args, **kwargs):
        self.country = self.country.strip().upper()
        super().save(*args, **kwargs)

"""Growth: price experiments (arms, assignment, exposure) and web promo codes (limits, redemptions)."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django_fsm import FSMField, transition

from monetization import clock
from monetization.models.state_machine import StateMachineModel

from .catalog import Platform


class Experiment(StateMachineModel, models.Model):
    """A price or paywall experiment: each customer lands in one arm, picked from sha256(salt + external id).

    Once a customer is exposed their arm is stored; stopping the experiment (or editing its weights)
    never moves them, so nobody's price changes under them.
    """

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    salt = models.CharField(max_length=64, help_text="Changing it reshuffles customers not yet exposed.")
    state = FSMField(default=State.DRAFT, choices=State.choices, protected=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key

    @transition(field=state, source=State.DRAFT, target=State.RUNNING)
    def start(self):
        self.started_at = clock.now()

    @transition(field=state, source=State.RUNNING, target=State.STOPPED)
    def stop(self):
        self.stopped_at = clock.now()


class ExperimentArm(models.Model):
    """One variant: a price, or an offering payload the client renders (a paywall)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    key = models.SlugField(max_length=64)
    weight = models.PositiveIntegerField(help_text="Relative share of customers (weights need not sum to 100).")
    price = models.ForeignKey("subscriptions.Price", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    offering = models.JSONField(default=dict, blank=True, help_text="What the client shows in this arm.")
    paywall = models.ForeignKey(
        "subscriptions.Offering",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The offering this arm's customers see at GET /api/v1/offerings.",
    )

    class Meta:
        ordering = ["experiment", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="uniq_experiment_arm_key"),
            models.CheckConstraint(condition=models.Q(weight__gt=0), name="experiment_arm_weight_positive"),
            models.CheckConstraint(
                condition=models.Q(price__isnull=False) | models.Q(paywall__isnull=False) | ~models.Q(offering={}),
                name="experiment_arm_price_or_offering",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}:{self.key}"


class ExperimentExposure(models.Model):
    """The arm a customer was shown, recorded the first time only: the source of truth after assignment."""

    experiment = models.ForeignKey(Experiment, on_delete=models.PROTECT, related_name="exposures")
    arm = models.ForeignKey(ExperimentArm, on_delete=models.PROTECT, related_name="exposures")
    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    exposed_at = models.DateTimeField(default=clock.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["experiment", "customer"], name="uniq_experiment_exposure"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.customer_id}"


class PromoCode(models.Model):
    """A web promo code (a Stripe promotion code): how many redemptions, until when, for whom."""

    code = models.CharField(max_length=64, unique=True, help_text="Stored upper case; matched case-insensitively.")
    description = models.CharField(max_length=200, blank=True)
    stripe_promotion_code_id = models.CharField(max_length=255, blank=True)
    max_redemptions = models.PositiveIntegerField()
    redeemed = models.PositiveIntegerField(default=0, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Blank: never")
    first_time_only = models.BooleanField(default=False, help_text="Only customers who never subscribed")
    countries = ArrayField(
        models.CharField(max_length=2), default=list, blank=True, help_text="ISO alpha-2 codes; empty: every country"
    )
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(redeemed__lte=models.F("max_redemptions")), name="promo_code_within_limit"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def save(self, *args, **kwargs):
        self.code = self.code.strip().upper()
        self.countries = sorted({c.strip().upper() for c in self.countries if c.strip()})
        super().save(*args, **kwargs)


class PromoRedemption(models.Model):
    """Who redeemed which code: a web promo code (once per customer and code), or a store's code as its
    provider event showed it (App Store offer code: offerType 3 and its offerIdentifier; Google Play
    promo code: signupPromotion), once per subscription and offer."""

    promo_code = models.ForeignKey(
        PromoCode, null=True, blank=True, on_delete=models.PROTECT, related_name="redemptions"
    )
    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    platform = models.CharField(max_length=8, choices=Platform.choices, default=Platform.WEB)
    subscription = models.ForeignKey(
        "subscriptions.Subscription", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    store_offer_id = models.CharField(
        max_length=255, blank=True, help_text="App Store offer code's offerIdentifier, or the Play offer id"
    )
    store_code = models.CharField(max_length=64, blank=True, help_text="Play vanity code (one-time codes are unnamed)")
    country = models.CharField(max_length=2, blank=True)
    redeemed_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-redeemed_at"]
        constraints = [
            models.UniqueConstraint(fields=["promo_code", "customer"], name="uniq_promo_redemption_per_customer"),
            models.UniqueConstraint(
                fields=["subscription", "store_offer_id", "store_code"],
                condition=models.Q(promo_code__isnull=True),
                name="uniq_store_code_redemption",
            ),
            models.CheckConstraint(
                condition=models.Q(promo_code__isnull=False) | models.Q(subscription__isnull=False),
                name="promo_redemption_web_or_store",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code_label} by {self.customer_id}"

    @property
    def code_label(self) -> str:
        if self.promo_code_id is not None:
            return self.promo_code.code
        return self.store_code or self.store_offer_id or f"{self.get_platform_display()} code"

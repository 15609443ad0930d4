from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from monetization import clock
from monetization.errors import InvalidInput
from monetization.models import Provider
from monetization.providers import provider_capabilities
from subscriptions.platform_rules import rule_for

from .catalog import Plan, Platform, Product


class Subscription(FSMModelMixin, models.Model):
    """A customer's subscription at one provider.

    States follow what the stores really do (see DESIGN.md, platform facts).
    Entitling states: trialing, active, in grace period, and canceled until the
    period ends. Transitions change state only; services talk to the world.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending first payment"
        TRIALING = "trialing", "Trialing"
        ACTIVE = "active", "Active"
        IN_GRACE_PERIOD = "in_grace_period", "In grace period"
        ON_HOLD = "on_hold", "Billing retry / on hold"
        PAUSED = "paused", "Paused"
        CANCELED = "canceled", "Canceled (access until period end)"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    ENTITLING_STATES = (State.TRIALING, State.ACTIVE, State.IN_GRACE_PERIOD, State.CANCELED)
    LIVE_STATES = (
        State.PENDING,
        State.TRIALING,
        State.ACTIVE,
        State.IN_GRACE_PERIOD,
        State.ON_HOLD,
        State.PAUSED,
        State.CANCELED,
    )

    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey("subscriptions.Plan", on_delete=models.PROTECT, related_name="subscriptions")
    sku = models.ForeignKey(
        "subscriptions.Sku", null=True, blank=True, on_delete=models.PROTECT, related_name="subscriptions"
    )
    platform = models.CharField(max_length=8, choices=Platform.choices)
    provider = models.CharField(max_length=16, choices=Provider.choices)
    provider_subscription_id = models.CharField(
        max_length=512, help_text="App Store original transaction id, Play purchase token, or Stripe subscription id"
    )
    state = FSMField(default=State.PENDING, choices=State.choices, protected=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    trial_end = models.DateTimeField(null=True, blank=True)
    grace_end = models.DateTimeField(null=True, blank=True)
    hold_end = models.DateTimeField(null=True, blank=True, help_text="End of billing retry / account hold")
    billing_issue_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the renewal failed (the lapse): picks the platform rule in force, anchors grace/hold/dunning",
    )
    auto_renew = models.BooleanField(default=True)
    cancel_reason = models.CharField(max_length=64, blank=True)
    quantity = models.PositiveIntegerField(default=1)
    started_at = models.DateTimeField(default=clock.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(
        null=True, blank=True, help_text="Provider timestamp of the newest event applied (orders out-of-order events)"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True, help_text="Google Play acknowledgement")
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)
    # The payments of this subscription, through the link rows that point at the core's payments.
    payments = models.ManyToManyField(
        "monetization.Payment", through="subscriptions.SubscriptionPayment", related_name="+", blank=True
    )

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("cancel_subscription", "Can cancel a subscription"),
            ("extend_subscription", "Can extend a subscription's period"),
            ("pause_subscription", "Can pause a subscription"),
            ("resume_subscription", "Can resume a paused subscription"),
            ("revoke_subscription", "Can revoke a subscription (ends access now)"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_subscription_id"], name="uniq_subscription_provider_id"
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "state"], name="subscription_customer_idx"),
            # The lifecycle sweep scans live subscriptions by period end.
            models.Index(
                fields=["state", "current_period_end"],
                name="subscription_sweep_idx",
            ),
            # The sweep's other due dates; partial, so only rows in that state carry an entry
            # and a sweep with nothing due reads nothing.
            models.Index(fields=["trial_end"], name="subscription_trial_due_idx", condition=models.Q(state="trialing")),
            models.Index(
                fields=["grace_end"], name="subscription_grace_due_idx", condition=models.Q(state="in_grace_period")
            ),
            models.Index(fields=["hold_end"], name="subscription_hold_due_idx", condition=models.Q(state="on_hold")),
            models.Index(
                fields=["started_at"], name="subscription_pending_due_idx", condition=models.Q(state="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} {self.get_provider_display()} {self.provider_subscription_id[:24]}"

    @property
    def is_entitling(self) -> bool:
        if self.state == self.State.CANCELED:
            return self.current_period_end is not None and self.current_period_end > clock.now()
        return self.state in self.ENTITLING_STATES

    # --- rules the transitions consult ---------------------------------------

    def lapsed_at(self) -> datetime:
        """When the renewal failed: the instant that picks the platform rule in force."""
        if self.billing_issue_at:
            return self.billing_issue_at
        if self.state == self.State.TRIALING and self.trial_end:
            return self.trial_end
        return self.current_period_end or clock.now()

    def platform_rule(self):
        return rule_for(self.provider, self.lapsed_at())

    # A probe without a provider (an unsaved instance used to search for a path of transitions)
    # cannot know its platform; the real row is checked when the transition runs on it.

    def product_grace_days(self) -> int:
        """Grace a product grants on its own terms, whatever the platform's rule (Verified
        Organizations keep their badges for a while after a failed seat invoice)."""
        if not self.provider or not self.plan_id:
            return 0
        return int(getattr(settings, "SUBSCRIPTION_PRODUCT_GRACE_DAYS", {}).get(self.product_kind(), 0))

    def product_kind(self) -> str:
        """The kind of product subscribed to: from the joined plan and product when loaded, else one query."""
        plan_field, product_field = type(self)._meta.get_field("plan"), Plan._meta.get_field("product")
        if plan_field.is_cached(self) and product_field.is_cached(self.plan):
            return self.plan.product.kind
        return Product.objects.filter(plans__pk=self.plan_id).values_list("kind", flat=True).first() or ""

    def is_organization_subscription(self) -> bool:
        return self.product_kind() == Product.Kind.ORGANIZATION

    def grace_configured(self) -> bool:
        return not self.provider or self.platform_rule().grace_days > 0 or self.product_grace_days() > 0

    def pause_supported(self) -> bool:
        # Google Play and Stripe pause; the App Store has no pause.
        return not self.provider or provider_capabilities(self.provider).paused_state

    # --- transitions -------------------------------------------------------
    # Each reads like the platforms' documentation: sources, conditions, and
    # the permission a staff member needs (``admin: False`` = system only:
    # provider events and the lifecycle sweep).

    @transition(field=state, source=State.PENDING, target=State.TRIALING, custom={"admin": False})
    def start_trial(self):
        pass

    @transition(
        field=state,
        source=[*LIVE_STATES, State.EXPIRED],
        target=State.ACTIVE,
        custom={"admin": False},
    )
    def activate(self):
        """Paid: first payment, renewal, recovery from grace or hold, resume, resubscribe."""
        self.auto_renew = True
        self.cancel_reason = ""
        self.grace_end = None
        self.hold_end = None
        self.billing_issue_at = None
        self.ended_at = None

    @transition(
        field=state,
        source=[State.TRIALING, State.ACTIVE],
        target=State.IN_GRACE_PERIOD,
        conditions=[grace_configured],
        custom={"admin": False},
    )
    def enter_grace_period(self, grace_end: datetime | None = None):
        """A renewal failed and the platform grants grace: access continues while it retries."""
        lapse = self.lapsed_at()
        self.billing_issue_at = lapse
        product_days = self.product_grace_days()
        default = lapse + (timedelta(days=product_days) if product_days else self.platform_rule().grace())
        self.grace_end = grace_end or default

    @transition(
        field=state,
        source=[State.TRIALING, State.ACTIVE, State.IN_GRACE_PERIOD],
        target=State.ON_HOLD,
        custom={"admin": False},
    )
    def put_on_hold(self, hold_end: datetime | None = None):
        """Billing retry (App Store), account hold (Play), past_due (Stripe): no access."""
        lapse = self.lapsed_at()
        self.billing_issue_at = lapse
        self.hold_end = hold_end or self.platform_rule().hold_end(lapsed_at=lapse, grace_end=self.grace_end)

    @transition(
        field=state,
        source=State.ACTIVE,
        target=State.PAUSED,
        conditions=[pause_supported],
        permission="subscriptions.pause_subscription",
    )
    def pause(self):
        pass

    @transition(field=state, source=State.PAUSED, target=State.ACTIVE, permission="subscriptions.resume_subscription")
    def resume(self):
        pass

    @transition(
        field=state,
        source=[State.TRIALING, State.ACTIVE, State.IN_GRACE_PERIOD, State.ON_HOLD, State.PAUSED],
        target=State.CANCELED,
        permission="subscriptions.cancel_subscription",
    )
    def cancel(self, reason: str = ""):
        """Auto-renew off: access continues until the period ends, then the sweep expires it."""
        self.auto_renew = False
        self.cancel_reason = reason[:64]

    @transition(
        field=state,
        source=[State.TRIALING, State.ACTIVE, State.CANCELED],
        target=None,  # the state stays; the period (and trial) get longer
        permission="subscriptions.extend_subscription",
    )
    def extend(self, days: int = 0):
        if days <= 0:
            raise InvalidInput("Extend by at least one day.")
        delta = timedelta(days=days)
        if self.current_period_end:
            self.current_period_end += delta
        if self.state == self.State.TRIALING and self.trial_end:
            self.trial_end += delta

    @transition(
        field=state,
        source=list(LIVE_STATES),
        target=State.EXPIRED,
        custom={"admin": False},
    )
    def expire(self):
        self.ended_at = clock.now()

    @transition(
        field=state,
        source=[*LIVE_STATES, State.EXPIRED],
        target=State.REVOKED,
        permission="subscriptions.revoke_subscription",
    )
    def revoke(self):
        """Refunded or revoked by the platform (or compliance): access ends now."""
        self.ended_at = clock.now()


class DunningAttempt(models.Model):
    """One scheduled payment retry of a web subscription that failed to renew.

    Created set-based by the lifecycle sweep, exactly once per (subscription,
    attempt) thanks to the unique constraint; Stripe's Smart Retries do the
    charging, we record the schedule and its outcome for support.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    subscription = models.ForeignKey(Subscription, on_delete=models.PROTECT, related_name="dunning_attempts")
    attempt = models.PositiveSmallIntegerField()
    due_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCHEDULED)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["subscription_id", "attempt"]
        constraints = [
            models.UniqueConstraint(fields=["subscription", "attempt"], name="uniq_dunning_attempt"),
        ]

    def __str__(self) -> str:
        return f"retry {self.attempt} of subscription {self.subscription_id}"

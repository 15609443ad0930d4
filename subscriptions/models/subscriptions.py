from django.db import models
from django_fsm import FSMField, FSMModelMixin, transition

from monetization import clock
from monetization.models import Provider

from .catalog import Platform


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

    class Meta:
        ordering = ["-id"]
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
        ]
        # Staff actions (support console); checked in subscriptions.services.actions.
        permissions = [
            ("cancel_subscription", "Can cancel a subscription"),
            ("extend_subscription", "Can extend a subscription"),
            ("pause_subscription", "Can pause or resume a subscription"),
            ("revoke_subscription", "Can revoke a subscription"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code} {self.get_provider_display()} {self.provider_subscription_id[:24]}"

    @property
    def is_entitling(self) -> bool:
        if self.state == self.State.CANCELED:
            return self.current_period_end is not None and self.current_period_end > clock.now()
        return self.state in self.ENTITLING_STATES

    # --- transitions -------------------------------------------------------

    @transition(field=state, source=State.PENDING, target=State.TRIALING)
    def start_trial(self):
        pass

    @transition(
        field=state,
        source=[
            State.PENDING,
            State.TRIALING,
            State.IN_GRACE_PERIOD,
            State.ON_HOLD,
            State.PAUSED,
            State.CANCELED,
            State.EXPIRED,
            State.ACTIVE,
        ],
        target=State.ACTIVE,
    )
    def activate(self):
        """Paid: first payment, renewal, recovery from grace or hold, resume, resubscribe."""
        self.auto_renew = True
        self.cancel_reason = ""
        self.grace_end = None
        self.hold_end = None
        self.ended_at = None

    @transition(field=state, source=[State.ACTIVE, State.TRIALING, State.CANCELED], target=State.IN_GRACE_PERIOD)
    def enter_grace_period(self):
        pass

    @transition(
        field=state,
        source=[State.ACTIVE, State.TRIALING, State.IN_GRACE_PERIOD, State.CANCELED, State.PENDING],
        target=State.ON_HOLD,
    )
    def put_on_hold(self):
        pass

    @transition(field=state, source=[State.ACTIVE], target=State.PAUSED)
    def pause(self):
        pass

    @transition(field=state, source=[State.PAUSED], target=State.ACTIVE)
    def resume(self):
        pass

    @transition(
        field=state,
        source=[State.TRIALING, State.ACTIVE, State.IN_GRACE_PERIOD, State.ON_HOLD, State.PAUSED],
        target=State.CANCELED,
    )
    def cancel(self, reason: str = ""):
        self.auto_renew = False
        self.cancel_reason = reason

    @transition(
        field=state,
        source=[
            State.PENDING,
            State.TRIALING,
            State.ACTIVE,
            State.IN_GRACE_PERIOD,
            State.ON_HOLD,
            State.PAUSED,
            State.CANCELED,
        ],
        target=State.EXPIRED,
    )
    def expire(self):
        self.ended_at = clock.now()

    @transition(field=state, source="*", target=State.REVOKED, conditions=[lambda s: s.state != s.State.REVOKED])
    def revoke(self):
        self.ended_at = clock.now()

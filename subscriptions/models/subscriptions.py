from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django_fsm import FSMField, can_proceed, transition

from monetization import clock
from monetization.errors import InvalidInput
from monetization.models import Provider
from monetization.models.state_machine import StateMachineModel
from monetization.providers import provider_capabilities
from subscriptions.platform_rules import PlatformRule, rule_for

from . import lifecycle
from .catalog import Plan, Platform, Product
from .lifecycle import EFFECTIVE, Deadline, Effects, Instant, Step, Terms, on_terms


def products_own_grace() -> dict[str, int]:
    """Kinds of product that grant grace on their own terms, whatever the platform's rule: kind -> days."""
    configured = getattr(settings, "SUBSCRIPTION_PRODUCT_GRACE_DAYS", {}) or {}
    return {kind: int(days) for kind, days in configured.items() if int(days) > 0}


def product_grace_days(kind: str) -> int:
    """Days of grace a kind of product grants on its own terms (0: the platform's rule decides)."""
    return products_own_grace().get(kind, 0)


def lapse_instant(state: str) -> Instant:
    """When a subscription in ``state`` lapsed (its renewal, or its first payment, failed): picks the
    platform rule in force and anchors grace, hold and dunning. Never the time it was noticed."""
    if state == "pending":
        return Instant(("billing_issue_at", "started_at"))
    if state == "trialing":
        return Instant(("billing_issue_at", "trial_end", "current_period_end", EFFECTIVE))
    return Instant(("billing_issue_at", "current_period_end", EFFECTIVE))


def grace_effects(source: str, terms: Callable[[], Terms]) -> dict[str, Instant]:
    lapse = lapse_instant(source)
    return {"billing_issue_at": lapse, "grace_end": lapse + terms().grace()}


def hold_effects(source: str, terms: Callable[[], Terms]) -> dict[str, Instant]:
    lapse = lapse_instant(source)
    t = terms()
    retry = t.billing_retry()
    # App Store billing retry runs from the lapse; an account hold / past_due follows grace.
    hold_end = lapse + retry if retry is not None else Instant(("grace_end", *lapse.columns)) + t.hold()
    return {"billing_issue_at": lapse, "hold_end": hold_end}


def end_effects(source: str, terms: Callable[[], Terms]) -> dict[str, Instant]:
    return {"ended_at": Instant((EFFECTIVE,))}


def renewal_leeway(terms: Terms) -> timedelta:
    return timedelta(minutes=terms.rule.renewal_leeway_minutes)


# A failed renewal (or an unpaid trial): grace if any, else billing retry / hold if any, else the end.
LAPSE_STEPS = (
    Step("enter_grace_period", tag="grace", reason=lambda t: f"renewal not paid; {t.grace().days}-day grace period"),
    Step(
        "put_on_hold",
        tag="hold",
        when=lifecycle.hold_configured,
        reason=lambda t: "renewal not paid; billing retry / account hold",
    ),
    Step("expire", reason=lambda t: "renewal not paid; no grace or hold"),
)


class Subscription(StateMachineModel, models.Model):
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
    # A store's price increase (App Store consent, Play price change), as the provider last said.
    # db_default: set-based inserts (benchmarks, bulk paths) that predate the column need not name it.
    price_increase = models.CharField(
        max_length=8,
        blank=True,
        default="",
        db_default="",
        choices=[("", "None"), ("pending", "Pending: not answered"), ("accepted", "Accepted")],
    )
    price_consented_at = models.DateTimeField(
        null=True, blank=True, help_text="When the subscriber last accepted a store's price increase"
    )
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
            # Finance's trial figures of a range of days: trials started, and trials ended, in it.
            models.Index(
                fields=["started_at"], name="subscription_trial_start_idx", condition=models.Q(trial_end__isnull=False)
            ),
            models.Index(
                fields=["trial_end"], name="subscription_trial_end_idx", condition=models.Q(trial_end__isnull=False)
            ),
            # The subscriptions changed since an instant (the stores' reconciliation and resync).
            models.Index(fields=["updated_at"], name="subscription_updated_idx"),
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

    # --- what the transitions consult ---------------------------------------------

    def lapsed_at(self) -> datetime:
        """When the renewal failed: the instant that picks the platform rule in force."""
        return lapse_instant(self.state).of(self, effective=clock.now())

    def platform_rule(self) -> PlatformRule:
        return rule_for(self.provider, self.lapsed_at())

    def product_grace_days(self) -> int:
        """Grace a product grants on its own terms, whatever the platform's rule (Verified
        Organizations keep their badges for a while after a failed seat invoice)."""
        if not self.plan_id:
            return 0
        return product_grace_days(self.product_kind())

    def product_kind(self) -> str:
        """The kind of product subscribed to: from the joined plan and product when loaded, else one query."""
        plan_field, product_field = type(self)._meta.get_field("plan"), Plan._meta.get_field("product")
        if plan_field.is_cached(self) and product_field.is_cached(self.plan):
            return self.plan.product.kind
        return Product.objects.filter(plans__pk=self.plan_id).values_list("kind", flat=True).first() or ""

    def is_organization_subscription(self) -> bool:
        return self.product_kind() == Product.Kind.ORGANIZATION

    def terms(self) -> Terms:
        return Terms(
            rule=self.platform_rule(),
            product_grace_days=self.product_grace_days(),
            capabilities=provider_capabilities(self.provider),
        )

    grace_configured = on_terms(lifecycle.grace_configured)
    pause_supported = on_terms(lifecycle.pause_supported)
    refund_reversal_supported = on_terms(lifecycle.refund_reversal_supported)

    def _take_effect(self, effects: Effects, at: datetime | None) -> None:
        # Every effect is computed from the row as it was, then written (as one SQL UPDATE would).
        effective = at or clock.now()
        values = {
            column: instant.of(self, effective=effective) for column, instant in effects(self.state, self.terms).items()
        }
        for column, value in values.items():
            setattr(self, column, value)

    # --- transitions ---------------------------------------------------------------
    # Each reads like the platforms' documentation: sources, conditions, and the
    # permission a staff member needs (``admin: False`` = system only: provider events
    # and the lifecycle sweep). ``effects`` are the dates a transition sets, declared
    # once for the row-by-row path (here) and the set-based sweep (in SQL). ``at``:
    # when the change took effect (the deadline that passed, for a move the clock makes).

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
        custom={"admin": False, "effects": grace_effects},
    )
    def enter_grace_period(self, grace_end: datetime | None = None, at: datetime | None = None):
        """A renewal failed and grace is granted (by the platform or the product): access continues
        while the payment is retried. ``grace_end``: the provider's own, when it says."""
        self._take_effect(grace_effects, at)
        if grace_end:
            self.grace_end = grace_end

    @transition(
        field=state,
        source=[State.TRIALING, State.ACTIVE, State.IN_GRACE_PERIOD],
        target=State.ON_HOLD,
        custom={"admin": False, "effects": hold_effects},
    )
    def put_on_hold(self, hold_end: datetime | None = None, at: datetime | None = None):
        """Billing retry (App Store), account hold (Play), past_due (Stripe): no access."""
        self._take_effect(hold_effects, at)
        if hold_end:
            self.hold_end = hold_end

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
        custom={"admin": False, "effects": end_effects},
    )
    def expire(self, at: datetime | None = None):
        self._take_effect(end_effects, at)

    @transition(
        field=state,
        source=[*LIVE_STATES, State.EXPIRED],
        target=State.REVOKED,
        permission="subscriptions.revoke_subscription",
    )
    def revoke(self):
        """Refunded or revoked by the platform (or compliance): access ends now."""
        self.ended_at = clock.now()

    @transition(
        field=state,
        source=State.REVOKED,
        target=State.ACTIVE,
        conditions=[refund_reversal_supported],
        custom={"admin": False},
    )
    def reinstate(self):
        """The platform reversed the refund that revoked it (App Store REFUND_REVERSED): access again."""
        self.ended_at = None

    # --- the moves the clock makes (the lifecycle sweep runs them set-based) ----------

    DEADLINES = (
        # Stripe: a first invoice not paid within 23 hours (incomplete -> incomplete_expired).
        Deadline(
            name="incomplete",
            source=State.PENDING,
            due="started_at",
            by_terms=True,
            after=lambda terms: timedelta(hours=terms.rule.incomplete_hours) if terms.rule.incomplete_hours else None,
            steps=(Step("expire", reason=lambda t: f"first payment not made within {t.rule.incomplete_hours} hours"),),
        ),
        Deadline(
            name="canceled",
            source=State.CANCELED,
            due="current_period_end",
            steps=(Step("expire", reason=lambda t: "canceled; period ended"),),
        ),
        Deadline(
            name="trialing:no_renew",
            source=State.TRIALING,
            due="trial_end",
            auto_renew=False,
            steps=(Step("expire", reason=lambda t: "auto-renew off; period ended"),),
        ),
        # A trial nobody paid for lapses like a failed renewal.
        Deadline(
            name="trialing",
            source=State.TRIALING,
            due="trial_end",
            auto_renew=True,
            by_terms=True,
            leeway=renewal_leeway,
            steps=LAPSE_STEPS,
        ),
        Deadline(
            name="active:no_renew",
            source=State.ACTIVE,
            due="current_period_end",
            auto_renew=False,
            steps=(Step("expire", reason=lambda t: "auto-renew off; period ended"),),
        ),
        Deadline(
            name="active",
            source=State.ACTIVE,
            due="current_period_end",
            auto_renew=True,
            by_terms=True,
            leeway=renewal_leeway,
            steps=LAPSE_STEPS,
        ),
        Deadline(
            name="grace_end",
            source=State.IN_GRACE_PERIOD,
            due="grace_end",
            by_terms=True,
            steps=(
                Step(
                    "put_on_hold",
                    tag="hold",
                    when=lifecycle.hold_configured,
                    reason=lambda t: (
                        "grace period expired; "
                        + ("billing retry continues" if t.billing_retry() is not None else "account hold")
                    ),
                ),
                Step("expire", reason=lambda t: "grace period expired; no account hold"),
            ),
        ),
        Deadline(
            name="hold_end",
            source=State.ON_HOLD,
            due="hold_end",
            steps=(Step("expire", reason=lambda t: "billing retry / account hold ended unpaid"),),
        ),
    )

    def clock_move(self, now: datetime) -> tuple[Deadline, Step, datetime] | None:
        """The move the clock makes on this subscription at ``now``, if one is due: the deadline,
        its first step whose conditions hold, and the instant the move takes effect."""
        for deadline in self.DEADLINES:
            if deadline.source != self.state or deadline.auto_renew not in (None, self.auto_renew):
                continue
            terms = self.terms() if deadline.by_terms else None
            effective = deadline.effective(terms)
            at = effective.of(self, effective=now) if effective is not None else None
            if at is None or at + deadline.leeway(terms) > now:
                return None
            for step in deadline.steps:
                if can_proceed(getattr(self, step.transition)) and (step.when is None or step.when(terms)):
                    return deadline, step, at
            return None
        return None


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

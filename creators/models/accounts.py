from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition

from monetization import clock
from monetization.models.state_machine import StateMachineModel


class CreatorAccount(StateMachineModel, models.Model):
    """A customer taking part in revenue sharing.

    applied -> eligible | ineligible; eligible -> onboarding -> active (needs a payout
    account and a tax form); active -> suspended -> active (reinstated); any live
    state -> banned. Re-evaluation may move eligible/ineligible back and forth.
    """

    class State(models.TextChoices):
        APPLIED = "applied", "Applied"
        ELIGIBLE = "eligible", "Eligible"
        INELIGIBLE = "ineligible", "Ineligible"
        ONBOARDING = "onboarding", "Onboarding"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        BANNED = "banned", "Banned"

    customer = models.OneToOneField("monetization.Customer", on_delete=models.PROTECT, related_name="creator_account")
    state = FSMField(default=State.APPLIED, choices=State.choices, protected=True, db_index=True)
    applied_at = models.DateTimeField(default=clock.now)
    state_changed_at = models.DateTimeField(default=clock.now)
    state_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("review_eligibility", "Can review creator eligibility"),
            ("suspend_creator", "Can suspend, reinstate and ban creators"),
        ]

    def __str__(self) -> str:
        return f"creator #{self.pk} ({self.customer_id})"

    def _payout_ready(self) -> bool:
        profile = getattr(self, "payout_profile", None)
        return profile is not None and profile.is_complete

    @transition(field=state, source=[State.APPLIED, State.INELIGIBLE, State.ELIGIBLE], target=State.ELIGIBLE)
    def mark_eligible(self):
        pass

    @transition(field=state, source=[State.APPLIED, State.ELIGIBLE, State.INELIGIBLE], target=State.INELIGIBLE)
    def mark_ineligible(self):
        pass

    @transition(field=state, source=State.ELIGIBLE, target=State.ONBOARDING)
    def start_onboarding(self):
        pass

    @transition(field=state, source=State.ONBOARDING, target=State.ACTIVE, conditions=[_payout_ready])
    def activate(self):
        pass

    @transition(field=state, source=State.ACTIVE, target=State.SUSPENDED)
    def suspend(self):
        pass

    @transition(field=state, source=State.SUSPENDED, target=State.ACTIVE)
    def reinstate(self):
        pass

    @transition(
        field=state,
        source=[State.APPLIED, State.ELIGIBLE, State.INELIGIBLE, State.ONBOARDING, State.ACTIVE, State.SUSPENDED],
        target=State.BANNED,
    )
    def ban(self):
        pass


class PayoutProfile(models.Model):
    """Where and under which tax form a creator is paid (Stripe Connect account)."""

    class TaxFormStatus(models.TextChoices):
        MISSING = "missing", "Missing"
        SUBMITTED = "submitted", "Submitted"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"

    class TaxFormType(models.TextChoices):
        NONE = "", "None"
        W9 = "w9", "W-9"
        W8BEN = "w8ben", "W-8BEN"
        W8BEN_E = "w8ben_e", "W-8BEN-E"

    creator = models.OneToOneField(CreatorAccount, on_delete=models.CASCADE, related_name="payout_profile")
    payout_account_id = models.CharField(max_length=64, blank=True, help_text="Stripe Connect account id (acct_...)")
    tax_form_status = models.CharField(max_length=16, choices=TaxFormStatus.choices, default=TaxFormStatus.MISSING)
    tax_form_type = models.CharField(max_length=16, choices=TaxFormType.choices, blank=True, default="")
    verified_at = models.DateTimeField(null=True, blank=True)
    # As Stripe last told us (``account.updated``): None until it has.
    payouts_enabled = models.BooleanField(null=True, blank=True)
    requirements_due = models.JSONField(default=list, blank=True)
    connect_synced_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"payout profile of {self.creator_id}"

    @property
    def is_complete(self) -> bool:
        return bool(self.payout_account_id) and self.tax_form_status in (
            self.TaxFormStatus.SUBMITTED,
            self.TaxFormStatus.VERIFIED,
        )


class CreatorStats(models.Model):
    """Audience facts the platform feeds us (ingestion or seed): the eligibility inputs we do not measure."""

    creator = models.OneToOneField(CreatorAccount, on_delete=models.CASCADE, related_name="stats")
    verified_followers = models.PositiveIntegerField(default=0)
    account_created_at = models.DateTimeField(help_text="When the platform account was opened")
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name_plural = "creator stats"

    def __str__(self) -> str:
        return f"stats of {self.creator_id}"


class EligibilityDecision(models.Model):
    """One evaluation of the rules: the outcome and, per rule, the measured value vs the threshold."""

    creator = models.ForeignKey(CreatorAccount, on_delete=models.CASCADE, related_name="eligibility_decisions")
    decided_at = models.DateTimeField(default=clock.now)
    eligible = models.BooleanField()
    reasons = models.JSONField(default=dict)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-decided_at", "-id"]
        indexes = [models.Index(fields=["creator", "-decided_at"], name="elig_creator_time_idx")]

    def __str__(self) -> str:
        return f"{self.creator_id} {'eligible' if self.eligible else 'ineligible'} @ {self.decided_at:%Y-%m-%d}"

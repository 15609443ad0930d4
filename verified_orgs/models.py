"""Verified organizations: the organization and its verification lifecycle, admins,
applications (the review history), affiliations (seats), the seat ledger and invoices.

Transitions change state only; verified_orgs.services does the locking, billing,
audit trail and entitlement invalidation around them.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.db.models import Q
from django_fsm import FSMField, transition
from djmoney.models.fields import CurrencyField, MoneyField

from monetization import clock
from monetization.models.state_machine import StateMachineModel

VERIFY_PERM = "verified_orgs.verify_organization"
REJECT_PERM = "verified_orgs.reject_organization"
SUSPEND_PERM = "verified_orgs.suspend_organization"
REINSTATE_PERM = "verified_orgs.reinstate_organization"
INVOICE_MANAGE_PERM = "verified_orgs.manage_orginvoice"


class Organization(StateMachineModel, models.Model):
    """An organization that applies for, and pays for, verification.

    applied -> in_review -> verified | rejected (may re-apply: rejected -> applied);
    verified -> suspended -> verified (reinstated); cancelled from any other state.
    """

    class State(models.TextChoices):
        APPLIED = "applied", "Applied"
        IN_REVIEW = "in_review", "In review"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"
        SUSPENDED = "suspended", "Suspended"
        CANCELLED = "cancelled", "Cancelled"

    class SuspensionCause(models.TextChoices):
        NONE = "", "-"
        COMPLIANCE = "compliance", "Compliance"
        PAYMENT = "payment", "Payment failed"

    name = models.CharField(max_length=200)
    handle = models.CharField(max_length=64, unique=True)
    website = models.URLField(blank=True)
    country = models.CharField(max_length=2, default="US", help_text="ISO 3166-1 alpha-2; picks the price")
    billing_customer = models.ForeignKey(
        "monetization.Customer", on_delete=models.PROTECT, related_name="billed_organizations"
    )
    vat_id = models.CharField(max_length=32, blank=True, help_text="VAT identification number, printed on invoices")
    # The organization's customer at the billing provider (Stripe), created when it is verified.
    provider_customer_id = models.CharField(max_length=64, blank=True)
    state = FSMField(default=State.APPLIED, choices=State.choices, protected=True, db_index=True)
    seat_limit = models.PositiveIntegerField(null=True, blank=True, help_text="Blank: no limit. Set by staff.")
    subscription = models.OneToOneField(
        "subscriptions.Subscription",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="organization",
    )
    state_reason = models.TextField(blank=True, help_text="Why it was last rejected, suspended or cancelled")
    suspension_cause = models.CharField(max_length=16, choices=SuspensionCause.choices, blank=True)
    submitted_at = models.DateTimeField(default=clock.now, help_text="Orders the review queue (oldest first)")
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    QUEUE_STATES = (State.APPLIED, State.IN_REVIEW)

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("verify_organization", "Can verify an organization"),
            ("reject_organization", "Can reject an organization's application"),
            ("suspend_organization", "Can suspend or cancel an organization"),
            ("reinstate_organization", "Can reinstate a suspended organization"),
        ]
        indexes = [models.Index(fields=["state", "submitted_at"], name="org_queue_idx")]

    def __str__(self) -> str:
        return f"{self.name} (@{self.handle})"

    # --- transitions -------------------------------------------------------

    @transition(
        field=state,
        source=State.APPLIED,
        target=State.IN_REVIEW,
        permission=VERIFY_PERM,
        custom={"label": "Start review"},
    )
    def start_review(self, reason: str = ""):
        pass

    @transition(
        field=state,
        source=State.IN_REVIEW,
        target=State.VERIFIED,
        permission=VERIFY_PERM,
        custom={"label": "Verify"},
    )
    def verify(self, reason: str = ""):
        self.verified_at = clock.now()
        self.state_reason = reason
        self.suspension_cause = ""

    @transition(
        field=state,
        source=[State.APPLIED, State.IN_REVIEW],
        target=State.REJECTED,
        permission=REJECT_PERM,
        custom={"label": "Reject"},
    )
    def reject(self, reason: str = ""):
        self.state_reason = reason

    @transition(
        field=state,
        source=State.REJECTED,
        target=State.APPLIED,
        custom={"label": "Re-apply", "admin": False},
    )
    def reapply(self, reason: str = ""):
        self.submitted_at = clock.now()
        self.state_reason = ""

    @transition(
        field=state,
        source=State.VERIFIED,
        target=State.SUSPENDED,
        permission=SUSPEND_PERM,
        custom={"label": "Suspend"},
    )
    def suspend(self, reason: str = "", cause: str = SuspensionCause.COMPLIANCE):
        self.state_reason = reason
        self.suspension_cause = cause

    @transition(
        field=state,
        source=State.SUSPENDED,
        target=State.VERIFIED,
        permission=REINSTATE_PERM,
        custom={"label": "Reinstate"},
    )
    def reinstate(self, reason: str = ""):
        self.state_reason = reason
        self.suspension_cause = ""

    @transition(
        field=state,
        source=[State.APPLIED, State.IN_REVIEW, State.VERIFIED, State.REJECTED, State.SUSPENDED],
        target=State.CANCELLED,
        permission=SUSPEND_PERM,
        custom={"label": "Cancel"},
    )
    def cancel(self, reason: str = ""):
        self.state_reason = reason


class OrganizationAdmin(models.Model):
    """A customer who manages an organization (invites and removes affiliates)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="admins")
    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "organization admin"
        constraints = [models.UniqueConstraint(fields=["organization", "customer"], name="uniq_org_admin")]
        indexes = [models.Index(fields=["customer"], name="org_admin_customer_idx")]

    def __str__(self) -> str:
        return f"admin {self.customer_id} of {self.organization_id}"


class VerificationApplication(models.Model):
    """One application (first or re-application) and its review: the review history."""

    class Decision(models.TextChoices):
        PENDING = "pending", "Pending"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"
        WITHDRAWN = "withdrawn", "Withdrawn"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="applications")
    submitted_at = models.DateTimeField(default=clock.now)
    documents = models.JSONField(default=list, blank=True, help_text='[{"label": ..., "url": ...}]')
    applicant_notes = models.TextField(blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    review_started_at = models.DateTimeField(null=True, blank=True)
    review_notes = models.TextField(blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.PENDING)
    reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-submitted_at", "-id"]
        indexes = [models.Index(fields=["organization", "-submitted_at"], name="org_application_idx")]

    def __str__(self) -> str:
        return f"application {self.pk} ({self.decision})"


class Affiliation(StateMachineModel, models.Model):
    """An account affiliated with an organization: a seat once active.

    A customer has at most one invited-or-active affiliation (a database constraint,
    so two organizations inviting the same account at once cannot both win).
    """

    class State(models.TextChoices):
        INVITED = "invited", "Invited"
        ACTIVE = "active", "Active"
        REMOVED = "removed", "Removed"
        EXPIRED = "expired", "Invitation expired"

    LIVE_STATES = (State.INVITED, State.ACTIVE)

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="affiliations")
    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="affiliations")
    state = FSMField(default=State.INVITED, choices=State.choices, protected=True)
    invited_by = models.ForeignKey(
        "monetization.Customer", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    token_hash = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the invitation token")
    invited_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(state__in=["invited", "active"]),
                name="one_live_affiliation_per_customer",
            ),
        ]
        indexes = [
            # The seat list: an org's affiliations by state, newest first (cursor on id).
            models.Index(fields=["organization", "state", "-id"], name="affiliation_org_state_idx"),
            models.Index(fields=["organization", "-id"], name="affiliation_org_idx"),
            # The expiry sweep.
            models.Index(fields=["expires_at"], condition=Q(state="invited"), name="affiliation_invited_exp_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} @ org {self.organization_id} ({self.state})"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @transition(field=state, source=State.INVITED, target=State.ACTIVE)
    def accept(self):
        self.accepted_at = clock.now()

    @transition(field=state, source=[State.INVITED, State.ACTIVE], target=State.REMOVED)
    def remove(self):
        self.ended_at = clock.now()

    @transition(field=state, source=State.INVITED, target=State.EXPIRED)
    def expire(self):
        self.ended_at = clock.now()


class SeatLedgerEntry(models.Model):
    """Append-only history of an organization's seat count (Zulip's LicenseLedger).

    ``quantity`` is the count after the change. The proration of a change is
    computed from the exact cumulative amount of the period, so rounding never
    drifts by more than one minor unit over a period (see services.billing).
    """

    class Reason(models.TextChoices):
        PERIOD_START = "period_start", "Period start"
        AFFILIATE_ADDED = "affiliate_added", "Affiliate added"
        AFFILIATE_REMOVED = "affiliate_removed", "Affiliate removed"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="seat_ledger")
    at = models.DateTimeField(default=clock.now)
    quantity = models.PositiveIntegerField()
    delta = models.IntegerField()
    reason = models.CharField(max_length=24, choices=Reason.choices)
    affiliation = models.ForeignKey(Affiliation, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    seat_price = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    proration = MoneyField(
        max_digits=19, decimal_places=4, default_currency="USD", help_text="Charged (>0) or credited (<0)"
    )
    # Exact (unrounded) prorations of the period so far, and what was charged for them so far.
    period_exact_total = models.DecimalField(max_digits=30, decimal_places=12)
    period_charged_total = models.DecimalField(max_digits=19, decimal_places=4)
    payment = models.ForeignKey(
        "monetization.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = "seat ledger entry"
        verbose_name_plural = "seat ledger"
        ordering = ["-id"]
        indexes = [models.Index(fields=["organization", "-id"], name="seat_ledger_org_idx")]

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.delta:+d} -> {self.quantity}"


class InvoiceNumberCounter(models.Model):
    """The last invoice number given out in a year: locked by whoever takes the next one, in the
    same transaction as the invoice, so numbers are gapless (a rollback gives the number back)."""

    year = models.PositiveIntegerField(unique=True)
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.year}: {self.last_number}"


class OrgInvoice(StateMachineModel, models.Model):
    """What an organization owes for one billing period, derived from the seat ledger.

    It mirrors one invoice of the billing provider (Stripe Billing): the period's base price and
    seats in advance, plus the seat prorations of the period before (Stripe's pending invoice
    items). draft -> open (numbered, sent to be collected) -> paid | void | uncollectible;
    an uncollectible invoice may still be paid.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, null=True, blank=True, unique=True, help_text="Gapless per year")
    status = FSMField(default=Status.DRAFT, choices=Status.choices, protected=True, db_index=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = CurrencyField(default="USD")
    total = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    tax = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    vat_id = models.CharField(max_length=32, blank=True, help_text="The organization's VAT id when issued")
    provider_invoice_id = models.CharField(max_length=64, blank=True, db_index=True)
    payment = models.ForeignKey(
        "monetization.Payment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    issued_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    class Meta:
        verbose_name = "organization invoice"
        ordering = ["-period_start"]
        permissions = [("manage_orginvoice", "Can void or write off an organization invoice")]
        constraints = [models.UniqueConstraint(fields=["organization", "period_start"], name="uniq_org_invoice")]

    def __str__(self) -> str:
        return f"{self.number or self.pk} {self.period_start:%Y-%m-%d} {self.total} {self.currency}"

    @transition(field=status, source=Status.DRAFT, target=Status.OPEN, custom={"admin": False})
    def finalize(self, number: str):
        self.number = number
        self.issued_at = clock.now()

    @transition(field=status, source=[Status.OPEN, Status.UNCOLLECTIBLE], target=Status.PAID, custom={"admin": False})
    def pay(self, payment):
        self.payment = payment
        self.paid_at = clock.now()

    @transition(
        field=status,
        source=[Status.DRAFT, Status.OPEN],
        target=Status.VOID,
        permission=INVOICE_MANAGE_PERM,
        custom={"label": "Void"},
    )
    def void(self):
        pass

    @transition(
        field=status,
        source=Status.OPEN,
        target=Status.UNCOLLECTIBLE,
        permission=INVOICE_MANAGE_PERM,
        custom={"label": "Mark uncollectible"},
    )
    def mark_uncollectible(self):
        pass


class OrgInvoiceLine(models.Model):
    class Kind(models.TextChoices):
        BASE = "base", "Base price"
        SEATS = "seats", "Seats at period start"
        SEAT_PRORATION = "seat_proration", "Seat change (prorated)"
        TAX = "tax", "Tax"

    invoice = models.ForeignKey(OrgInvoice, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.CharField(max_length=200)
    quantity = models.IntegerField(default=1)
    amount = models.DecimalField(max_digits=19, decimal_places=4)
    seat_ledger_entry = models.OneToOneField(
        SeatLedgerEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount}"


class OrgCreditNote(models.Model):
    """Money given back against an issued invoice: a seat credit or a refund, numbered like invoices."""

    class Reason(models.TextChoices):
        SEAT_CREDIT = "seat_credit", "Seat credit"
        REFUND = "refund", "Refund"

    invoice = models.ForeignKey(OrgInvoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=32, unique=True)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    amount = models.DecimalField(max_digits=19, decimal_places=4, help_text="Positive: what is credited")
    currency = CurrencyField(default="USD")
    memo = models.CharField(max_length=200, blank=True)
    reference = models.CharField(max_length=128, unique=True, help_text="What it credits (once per reference)")
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.number} {self.amount} {self.currency}"


class ReviewQueueItem(Organization):
    """The compliance review queue: organizations waiting for a decision, oldest first."""

    class Meta:
        proxy = True
        verbose_name = "review queue item"
        verbose_name_plural = "review queue"

from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition

from monetization import clock
from monetization.models.state_machine import StateMachineModel


class Payout(StateMachineModel, models.Model):
    """Money going to one creator for one cycle through the payout provider.

    scheduled -> held | approved; held -> approved (last hold lifted); approved -> sending
    (claimed by a paying run) -> paid | failed; failed -> processing (queued for a retry) ->
    sending. ``idempotency_key`` (``payout:<id>``) goes with every transfer request, so a crashed
    or repeated run never pays twice. ``claim_token`` names the database session that claimed a
    sending payout: a run whose session is gone left it behind, and another run takes it over.
    """

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        HELD = "held", "Held"
        APPROVED = "approved", "Approved"
        PROCESSING = "processing", "Processing"
        SENDING = "sending", "Sending"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"

    # Approving a cycle inserts a payout per payable earning (100k+) in one statement. The cycle and
    # creator columns have no database FK constraint (as on the earnings): each deferred check cost a row
    # lookup at COMMIT (1.0 s and 1.8 s of 4.8 s at 167k payouts), the cycle is the one approve holds
    # locked, creator_id is copied from the earning, and cycles and creators are never deleted (PROTECT in
    # the ORM). The earning keeps its constraint: earnings are deleted when a cycle is recomputed, and a
    # payout must never outlive its earning. No single-column indexes either: payout_claim_idx leads with
    # the cycle and payout_creator_idx with the creator.
    cycle = models.ForeignKey(
        "creators.RevenueShareCycle",
        on_delete=models.PROTECT,
        related_name="payouts",
        db_constraint=False,
        db_index=False,
    )
    creator = models.ForeignKey(
        "creators.CreatorAccount",
        on_delete=models.PROTECT,
        related_name="payouts",
        db_constraint=False,
        db_index=False,
    )
    earning = models.OneToOneField("creators.CreatorEarning", on_delete=models.PROTECT, related_name="payout")
    amount = models.DecimalField(max_digits=19, decimal_places=4)
    currency = models.CharField(max_length=3, default="USD")
    status = FSMField(default=Status.SCHEDULED, choices=Status.choices, protected=True)
    destination = models.CharField(max_length=64, blank=True, help_text="Payout account at the provider")
    transfer_id = models.CharField(max_length=128, blank=True)
    failure_reason = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    sends = models.PositiveSmallIntegerField(
        default=0, help_text="Transfers reversed so far: each re-send goes under a new idempotency key"
    )
    claim_token = models.CharField(max_length=64, blank=True, help_text="Session of the run sending it")
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.CheckConstraint(condition=models.Q(amount__gt=0), name="payout_amount_positive")]
        # The paying run claims (cycle, status) in id order; creators read their own payouts.
        indexes = [
            models.Index(fields=["cycle", "status", "id"], name="payout_claim_idx"),
            models.Index(fields=["creator", "-id"], name="payout_creator_idx"),
        ]
        permissions = [("manage_holds", "Can place and lift payout holds")]

    def __str__(self) -> str:
        return f"payout #{self.pk} {self.amount} {self.currency} ({self.status})"

    @property
    def idempotency_key(self) -> str:
        return f"payout:{self.pk}" if not self.sends else f"payout:{self.pk}:{self.sends}"

    @property
    def paid_entry_key(self) -> str:
        """The ledger key of this send's payment (the first send keeps the key it always had)."""
        return f"payout:{self.pk}:paid" if not self.sends else f"payout:{self.pk}:{self.sends}:paid"

    @transition(
        field=status, source=[Status.SCHEDULED, Status.APPROVED, Status.PROCESSING, Status.FAILED], target=Status.HELD
    )
    def hold(self):
        pass

    @transition(field=status, source=[Status.SCHEDULED, Status.HELD], target=Status.APPROVED)
    def approve(self):
        pass

    @transition(field=status, source=[Status.APPROVED, Status.PROCESSING, Status.SENDING], target=Status.SENDING)
    def claim(self, token: str):
        """A paying run takes the payout (again from sending: its claimant's session is gone)."""
        self.attempts += 1
        self.claim_token = token
        self.claimed_at = clock.now()

    @transition(field=status, source=Status.SENDING, target=Status.PAID)
    def mark_paid(self, transfer_id: str = ""):
        self.transfer_id = transfer_id
        self.paid_at = clock.now()

    @transition(field=status, source=Status.SENDING, target=Status.FAILED)
    def fail(self, reason: str = ""):
        self.failure_reason = reason[:255]

    @transition(field=status, source=Status.FAILED, target=Status.PROCESSING)
    def retry(self):
        self.failure_reason = ""

    @transition(field=status, source=Status.PAID, target=Status.HELD)
    def reverse(self, reason: str = ""):
        """The transfer came back (Stripe ``transfer.reversed``): owed again, held, re-sent under a new key."""
        self.sends += 1
        self.transfer_id = ""
        self.paid_at = None
        self.failure_reason = reason[:255]


class PayoutHold(models.Model):
    """A compliance hold on a payout; the payout moves only when every hold on it is lifted."""

    class Kind(models.TextChoices):
        MISSING_TAX_FORM = "missing_tax_form", "Missing tax form"
        SANCTIONS_REVIEW = "sanctions_review", "Sanctions review"
        FRAUD = "fraud", "Fraud"
        CONNECT_ACCOUNT = "connect_account", "Stripe account cannot be paid"
        TRANSFER_REVERSED = "transfer_reversed", "Transfer reversed"
        BANK_PAYOUT_FAILED = "bank_payout_failed", "Bank payout failed"

    payout = models.ForeignKey(Payout, on_delete=models.PROTECT, related_name="holds")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    reason = models.TextField()
    placed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    placed_at = models.DateTimeField(default=clock.now)
    lifted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)
    lift_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-placed_at"]
        indexes = [models.Index(fields=["payout", "lifted_at"], name="payout_hold_active_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on payout {self.payout_id}"

    @property
    def is_active(self) -> bool:
        return self.lifted_at is None

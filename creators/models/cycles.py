from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition

from monetization import clock
from monetization.models.state_machine import StateMachineModel

COMPUTE_PERM = "creators.compute_cycle"
APPROVE_PERM = "creators.approve_cycle"


class RevenueShareCycle(StateMachineModel, models.Model):
    """One month of revenue sharing.

    open -> computing -> computed -> in_review -> approved -> paying -> paid -> closed;
    in_review -> computed (rejected, recompute not needed) or -> open (rejected, recompute).
    Whoever computed a cycle cannot approve it (service check and a CHECK constraint).
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        COMPUTING = "computing", "Computing"
        COMPUTED = "computed", "Computed"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        PAYING = "paying", "Paying"
        PAID = "paid", "Paid"
        CLOSED = "closed", "Closed"

    period = models.DateField(unique=True, help_text="First day of the month the cycle shares out")
    state = FSMField(default=State.OPEN, choices=State.choices, protected=True)
    currency = models.CharField(max_length=3, default="USD")
    revenue = models.DecimalField(max_digits=19, decimal_places=4, default=0, help_text="Subscription revenue")
    pool = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    pool_share = models.DecimalField(max_digits=6, decimal_places=4, default=0)
    revenue_by_currency = models.JSONField(default=dict, blank=True)
    pools = models.JSONField(default=dict, blank=True, help_text="Pool per currency (each split and paid in its own)")
    weights = models.JSONField(default=dict, blank=True)
    compute_run = models.PositiveIntegerField(default=0, help_text="Bumped by each computation (ledger keys)")
    computed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    computed_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_reason = models.TextField(blank=True)
    compute_processed = models.PositiveIntegerField(default=0)
    compute_total = models.PositiveIntegerField(default=0)
    pay_processed = models.PositiveIntegerField(default=0)
    pay_total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["-period"]
        permissions = [
            ("compute_cycle", "Can compute revenue-share cycles"),
            ("approve_cycle", "Can approve or reject revenue-share cycles"),
            ("export_payouts", "Can export payouts as CSV"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(computed_by__isnull=True)
                | models.Q(approved_by__isnull=True)
                | ~models.Q(computed_by=models.F("approved_by")),
                name="cycle_four_eyes",
            ),
        ]

    def __str__(self) -> str:
        return f"cycle {self.period:%Y-%m}"

    # Transitions name the permission a staff member needs and how the cycle page offers them
    # (``label``; ``reason``: the button asks for one); ``admin: False`` = the runs' own steps.

    @transition(
        field=state,
        source=[State.OPEN, State.COMPUTING],  # again from computing: resumes a computation cut short
        target=State.COMPUTING,
        permission=COMPUTE_PERM,
        custom={"label": "Compute"},
    )
    def start_computing(self):
        pass

    @transition(field=state, source=State.COMPUTING, target=State.COMPUTED, custom={"admin": False})
    def finish_computing(self):
        self.computed_at = clock.now()

    @transition(
        field=state,
        source=State.COMPUTED,
        target=State.IN_REVIEW,
        permission=COMPUTE_PERM,
        custom={"label": "Send to review"},
    )
    def submit(self):
        pass

    @transition(
        field=state,
        source=State.IN_REVIEW,
        target=State.APPROVED,
        permission=lambda cycle, user: user.has_perm(APPROVE_PERM) and cycle.computed_by_id != user.pk,
        custom={"label": "Approve", "reason": True},
    )
    def approve(self):
        """Four-eyes: never by whoever computed the cycle."""
        self.approved_at = clock.now()

    @transition(
        field=state,
        source=State.IN_REVIEW,
        target=State.COMPUTED,
        permission=APPROVE_PERM,
        custom={"label": "Reject (back to computed)", "reason": True},
    )
    def reject(self, reason: str = ""):
        self.rejected_reason = reason

    @transition(
        field=state,
        source=[State.IN_REVIEW, State.COMPUTED],
        target=State.OPEN,
        permission=APPROVE_PERM,
        custom={"label": "Reject and recompute", "reason": True},
    )
    def reopen(self, reason: str = ""):
        self.rejected_reason = reason

    @transition(
        field=state,
        source=[State.APPROVED, State.PAYING],  # again from paying: resumes a paying run cut short
        target=State.PAYING,
        permission=APPROVE_PERM,
        custom={"label": "Run payouts"},
    )
    def start_paying(self):
        pass

    @transition(field=state, source=State.PAYING, target=State.PAID, custom={"admin": False})
    def finish_paying(self):
        pass

    @transition(
        field=state,
        source=State.PAID,
        target=State.CLOSED,
        permission=APPROVE_PERM,
        custom={"label": "Close cycle", "confirm_held": True},
    )
    def close(self):
        pass


class CreatorEarning(models.Model):
    """What one creator earned in one cycle in one currency (minor-unit exact amounts).

    ``total = pool_amount + subscription_amount - clawed_back + carried_in``; ``payable`` is the
    total when it reaches the minimum payout, else 0 and the total is ``carried_out`` to the next
    cycle. A negative total (clawbacks above what was earned) is carried out too: it is the
    creator's recorded debt, set against their next earnings in that currency, never paid.
    This table is the creator-payable subledger; the ledger holds the balanced totals.
    """

    # No database FK constraints here, deliberately: a cycle inserts 100k+ rows set-based and
    # Django's deferred FK checks cost as much as the insert itself (2 RI lookups per row at
    # COMMIT). Integrity holds by construction: rows are only written by the compute, from ids
    # of existing creators and the locked cycle, and creators and cycles are never deleted
    # (PROTECT in the ORM, no delete in the admin).
    # Nor single-column indexes: (cycle, creator, currency) and (creator, cycle) cover those lookups, and
    # every index is maintained for each of the cycle's rows (one per creator and pool currency).
    cycle = models.ForeignKey(
        RevenueShareCycle, on_delete=models.PROTECT, related_name="earnings", db_constraint=False, db_index=False
    )
    creator = models.ForeignKey(
        "creators.CreatorAccount",
        on_delete=models.PROTECT,
        related_name="earnings",
        db_constraint=False,
        db_index=False,
    )
    score = models.DecimalField(max_digits=30, decimal_places=4, default=0, help_text="Weighted engagement")
    pool_amount = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    subscription_amount = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    carried_in = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    clawed_back = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    total = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    payable = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    carried_out = models.DecimalField(max_digits=19, decimal_places=4, default=0)
    currency = models.CharField(max_length=3, default="USD")

    class Meta:
        ordering = ["-total"]
        constraints = [
            models.UniqueConstraint(fields=["cycle", "creator", "currency"], name="uniq_earning_cycle_creator_cur"),
            models.CheckConstraint(
                condition=models.Q(total=models.F("payable") + models.F("carried_out")), name="earning_split_exact"
            ),
        ]
        indexes = [models.Index(fields=["creator", "cycle"], name="earning_creator_idx")]

    def __str__(self) -> str:
        return f"{self.creator_id} in {self.cycle_id}: {self.total} {self.currency}"

from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition

from monetization import clock

from .state_machine import StateMachineModel


class CustomerMerge(StateMachineModel, models.Model):
    """Staff moving what one customer owns to another: one purchase (``transfer``) or everything (``merge``).

    Lifecycle, as a refund's: requested -> pending_approval -> completed | rejected; requested ->
    completed when what moves is at or below the four-eyes threshold. A completed merge is the
    merged-away customer's tombstone: it names the survivor, and nothing can be merged into or out
    of that customer again.
    """

    class Kind(models.TextChoices):
        TRANSFER = "transfer", "Transfer one purchase"
        MERGE = "merge", "Merge customers"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"

    OPEN = (Status.REQUESTED, Status.PENDING_APPROVAL)

    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    target = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    # The purchase a transfer moves (a subscription id: the core knows no product app's models).
    purchase_id = models.BigIntegerField(null=True, blank=True)
    status = FSMField(default=Status.REQUESTED, choices=Status.choices, protected=True, db_index=True)
    reason = models.TextField()
    preview = models.JSONField(default=list, help_text="What moves, as computed when it was requested")
    moved = models.JSONField(null=True, blank=True, help_text="What moved, as the move counted it")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_reason = models.TextField(blank=True)
    requested_at = models.DateTimeField(default=clock.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "customer merge or transfer"
        verbose_name_plural = "customer merges and transfers"
        constraints = [
            models.CheckConstraint(condition=~models.Q(source=models.F("target")), name="merge_source_not_target"),
            models.CheckConstraint(
                condition=models.Q(kind="merge", purchase_id__isnull=True)
                | models.Q(kind="transfer", purchase_id__isnull=False),
                name="merge_purchase_only_for_transfer",
            ),
            # Four-eyes, enforced by the database too: nobody approves their own request.
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True)
                | models.Q(requested_by__isnull=True)
                | ~models.Q(approved_by=models.F("requested_by")),
                name="merge_approver_not_requester",
            ),
            # The tombstone: a customer is merged away once.
            models.UniqueConstraint(
                fields=["source"], condition=models.Q(kind="merge", status="completed"), name="uniq_merged_away"
            ),
            # One open merge per customer being merged away: a second request waits for the first decision.
            models.UniqueConstraint(
                fields=["source"],
                condition=models.Q(kind="merge", status__in=["requested", "pending_approval"]),
                name="uniq_open_merge_per_source",
            ),
        ]
        indexes = [
            models.Index(fields=["target", "-requested_at"], name="merge_target_idx"),
            models.Index(fields=["source", "-requested_at"], name="merge_source_idx"),
        ]
        permissions = [
            ("request_customer_merge", "Can transfer a purchase or merge two customers"),
            ("approve_customer_merge", "Can approve or reject a transfer or merge above the threshold"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} {self.source_id} -> {self.target_id} ({self.status})"

    @transition(field=status, source=Status.REQUESTED, target=Status.PENDING_APPROVAL)
    def hold_for_approval(self):
        pass

    @transition(field=status, source=[Status.REQUESTED, Status.PENDING_APPROVAL], target=Status.COMPLETED)
    def complete(self, by=None):
        if self.status == self.Status.PENDING_APPROVAL:
            self.approved_by = by
            self.decided_at = clock.now()
        self.completed_at = clock.now()

    @transition(field=status, source=Status.PENDING_APPROVAL, target=Status.REJECTED)
    def reject(self, by=None):
        self.approved_by = by
        self.decided_at = clock.now()

import uuid

from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition
from djmoney.models.fields import MoneyField

from monetization import clock

from .state_machine import StateMachineModel


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


class Refund(StateMachineModel, models.Model):
    """Money given back on a payment, full or partial.

    Lifecycle: requested -> pending_approval -> approved -> submitted -> succeeded | failed;
    pending_approval -> rejected; failed -> submitted (retry, same idempotency key; a
    submission stuck longer than REFUND_SUBMITTED_STUCK_AFTER may be re-sent too). A refund above the
    four-eyes threshold waits in pending_approval for a second staff member.
    An open refund (anything not rejected / failed) reserves its amount against
    the payment, so concurrent requests cannot over-refund.
    """

    class Reason(models.TextChoices):
        DUPLICATE = "duplicate", "Duplicate charge"
        FRAUDULENT = "fraudulent", "Fraudulent"
        REQUESTED_BY_CUSTOMER = "requested_by_customer", "Requested by customer"
        SERVICE_OUTAGE = "service_outage", "Service outage"
        GOODWILL = "goodwill", "Goodwill"
        OTHER = "other", "Other"

    class RevokeAccess(models.TextChoices):
        NOW = "now", "Revoke access now"
        AT_PERIOD_END = "at_period_end", "Cancel at period end"
        NONE = "none", "Keep access"

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        APPROVED = "approved", "Approved"
        SUBMITTED = "submitted", "Submitted to provider"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"
        REVERSED = "reversed", "Reversed by the provider"

    # Statuses whose amount counts against what is still refundable.
    RESERVING = (Status.REQUESTED, Status.PENDING_APPROVAL, Status.APPROVED, Status.SUBMITTED)

    payment = models.ForeignKey("monetization.Payment", on_delete=models.PROTECT, related_name="refunds")
    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="refunds")
    amount = MoneyField(max_digits=19, decimal_places=4, default_currency="USD")
    reason_code = models.CharField(max_length=32, choices=Reason.choices)
    note = models.TextField(blank=True)
    revoke_access = models.CharField(max_length=16, choices=RevokeAccess.choices, default=RevokeAccess.NONE)
    status = FSMField(default=Status.REQUESTED, choices=Status.choices, protected=True, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_reason = models.TextField(blank=True, help_text="Why it was approved or rejected")
    provider_refund_id = models.CharField(max_length=255, blank=True)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.TextField(blank=True)
    idempotency_key = models.CharField(
        max_length=64, unique=True, default=new_idempotency_key, help_text="Sent to the provider with every attempt"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    requested_at = models.DateTimeField(default=clock.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="refund_amount_positive"),
            # Four-eyes, enforced by the database too: nobody approves their own refund.
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True)
                | models.Q(requested_by__isnull=True)
                | ~models.Q(approved_by=models.F("requested_by")),
                name="refund_approver_not_requester",
            ),
            models.UniqueConstraint(
                fields=["payment", "provider_refund_id"],
                condition=~models.Q(provider_refund_id=""),
                name="uniq_refund_provider_id",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "-requested_at"], name="refund_customer_time_idx"),
            models.Index(fields=["payment", "status"], name="refund_payment_status_idx"),
            # Support finds a customer by the provider's refund id alone.
            models.Index(
                fields=["provider_refund_id"], name="refund_provider_id_idx", condition=~models.Q(provider_refund_id="")
            ),
        ]
        permissions = [
            ("request_refund", "Can request a refund"),
            ("approve_refund", "Can approve or reject a refund above the threshold"),
        ]

    def __str__(self) -> str:
        return f"Refund #{self.pk} {self.amount} ({self.status})"

    @transition(field=status, source=Status.REQUESTED, target=Status.PENDING_APPROVAL)
    def hold_for_approval(self):
        pass

    @transition(field=status, source=[Status.REQUESTED, Status.PENDING_APPROVAL], target=Status.APPROVED)
    def approve(self, by=None):
        self.approved_by = by
        self.decided_at = clock.now()

    @transition(field=status, source=Status.PENDING_APPROVAL, target=Status.REJECTED)
    def reject(self, by=None):
        self.approved_by = by
        self.decided_at = clock.now()

    @transition(field=status, source=[Status.APPROVED, Status.FAILED], target=Status.SUBMITTED)
    def submit(self):
        self.attempts += 1
        self.submitted_at = clock.now()
        self.failure_code = ""
        self.failure_message = ""

    @transition(field=status, source=[Status.SUBMITTED, Status.REQUESTED, Status.APPROVED], target=Status.SUCCEEDED)
    def succeed(self, provider_refund_id: str = ""):
        self.provider_refund_id = provider_refund_id
        self.completed_at = clock.now()

    @transition(field=status, source=Status.SUCCEEDED, target=Status.REVERSED)
    def reverse(self):
        """The provider took back a refund it made (App Store REFUND_REVERSED): the money is ours again."""

    @transition(field=status, source=Status.SUBMITTED, target=Status.FAILED)
    def fail(self, code: str = "", message: str = ""):
        self.failure_code = code
        self.failure_message = message
        self.completed_at = clock.now()

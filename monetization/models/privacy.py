"""Personal data requests: a customer's right to erasure, queued against its legal deadline."""

import datetime

from django.conf import settings
from django.db import models
from django_fsm import FSMField, transition

from monetization import clock

from .state_machine import StateMachineModel

# GDPR art. 12(3): answer within one month of the request.
ERASURE_DEADLINE = datetime.timedelta(days=30)


def erasure_due_at() -> datetime.datetime:
    return clock.now() + ERASURE_DEADLINE


class ErasureRequest(StateMachineModel, models.Model):
    """A request to erase what we hold on a customer, due 30 days after it was received.

    Lifecycle: requested -> in_progress (Compliance has verified the person and taken it on)
    -> done (executed: provider subscriptions cancelled where we can, personal fields
    pseudonymized) | rejected (with a reason, e.g. the person could not be verified).
    ``outcome`` records what execution did and what only the customer can still do
    (store subscriptions Support must point them to); it holds no personal data.
    """

    class State(models.TextChoices):
        REQUESTED = "requested", "Requested"
        IN_PROGRESS = "in_progress", "In progress"
        DONE = "done", "Done"
        REJECTED = "rejected", "Rejected"

    OPEN = (State.REQUESTED, State.IN_PROGRESS)

    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    state = FSMField(default=State.REQUESTED, choices=State.choices, protected=True)
    requested_at = models.DateTimeField(default=clock.now)
    due_at = models.DateTimeField(default=erasure_due_at, help_text="The legal deadline: 30 days after the request.")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reason = models.TextField(help_text="How the request reached us (channel, date, reference).")
    started_at = models.DateTimeField(null=True, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_reason = models.TextField(blank=True)
    outcome = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            # The Compliance queue: open requests by deadline.
            models.Index(
                fields=["due_at"],
                name="erasure_open_due_idx",
                condition=models.Q(state__in=["requested", "in_progress"]),
            ),
        ]
        constraints = [
            # One open request per customer: a second one would erase the same data twice.
            models.UniqueConstraint(
                fields=["customer"],
                name="uniq_open_erasure_per_customer",
                condition=models.Q(state__in=["requested", "in_progress"]),
            ),
        ]
        permissions = [
            ("execute_erasurerequest", "Can execute or reject an erasure request"),
            ("export_personal_data", "Can export everything held on a customer"),
        ]

    def __str__(self) -> str:
        return f"Erasure #{self.pk} of customer {self.customer_id} ({self.state})"

    @property
    def overdue(self) -> bool:
        return self.state in self.OPEN and self.due_at < clock.now()

    @transition(field=state, source=State.REQUESTED, target=State.IN_PROGRESS)
    def start(self, *, by):
        self.started_at = clock.now()
        self.started_by = by

    @transition(field=state, source=[State.REQUESTED, State.IN_PROGRESS], target=State.DONE)
    def complete(self, *, by, reason: str, outcome: dict):
        self.decided_at = clock.now()
        self.decided_by = by
        self.decided_reason = reason
        self.outcome = outcome

    @transition(field=state, source=[State.REQUESTED, State.IN_PROGRESS], target=State.REJECTED)
    def reject(self, *, by, reason: str):
        self.decided_at = clock.now()
        self.decided_by = by
        self.decided_reason = reason

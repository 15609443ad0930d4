from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django_fsm import FSMField, transition

from monetization import clock
from monetization.models.state_machine import StateMachineModel

DECIDE_PERM = "subscriptions.decide_overlapcase"


class OverlapCase(StateMachineModel, models.Model):
    """A customer paying on two platforms at once for the same entitlements (found by the daily
    detection): Support's queue, with the suggested fix, until someone resolves or dismisses it.

    One case per customer and set of subscriptions, whatever its state: a dismissed overlap is not
    raised again by the next run; a different set (a third subscription, a new one) is a new case.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    class Fix(models.TextChoices):
        CANCEL_WEB = "cancel_web", "Cancel the web subscription (and refund its overlap): we can"
        CANCEL_IN_STORE = "cancel_in_store", "The customer cancels the newer one in its store (manage link)"

    customer = models.ForeignKey("monetization.Customer", on_delete=models.PROTECT, related_name="+")
    subscription_ids = ArrayField(models.BigIntegerField(), help_text="The overlapping subscriptions, sorted")
    providers = ArrayField(models.CharField(max_length=16))
    entitlement_keys = ArrayField(models.CharField(max_length=64), help_text="What both pay for")
    keep = models.ForeignKey(
        "subscriptions.Subscription", null=True, on_delete=models.PROTECT, related_name="+", help_text="Suggested: keep"
    )
    end = models.ForeignKey(
        "subscriptions.Subscription",
        null=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Suggested: cancel (and refund the overlap)",
    )
    fix = models.CharField(max_length=16, choices=Fix.choices)
    manage_url = models.URLField(max_length=500, blank=True, help_text="The store's page where the customer cancels")
    state = FSMField(default=State.OPEN, choices=State.choices, protected=True)
    detected_at = models.DateTimeField(default=clock.now)
    last_seen_at = models.DateTimeField(default=clock.now, help_text="The last run that still found the overlap")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True)

    class Meta:
        verbose_name = "two-platform case"
        permissions = [("decide_overlapcase", "Can resolve or dismiss a two-platform case")]
        constraints = [
            models.UniqueConstraint(fields=["customer", "subscription_ids"], name="uniq_overlap_case"),
        ]
        indexes = [models.Index(fields=["state", "-detected_at"], name="overlap_queue_idx")]

    def __str__(self) -> str:
        return f"Two-platform case {self.pk} ({', '.join(self.providers)})"

    @transition(field=state, source=State.OPEN, target=State.RESOLVED, permission=DECIDE_PERM)
    def resolve(self, reason: str = ""):
        self.decision_reason = reason

    @transition(field=state, source=State.OPEN, target=State.DISMISSED, permission=DECIDE_PERM)
    def dismiss(self, reason: str = ""):
        self.decision_reason = reason

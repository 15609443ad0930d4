from django.db import models
from django_fsm import FSMField, transition

from monetization import clock

from .customers import Provider
from .state_machine import StateMachineModel


class WebhookEvent(StateMachineModel, models.Model):
    """A verified provider notification, stored once and applied by a worker.

    The inbox is the idempotency boundary: (provider, event_id) is unique, so a
    redelivered notification is acknowledged without being stored or applied
    again. ``raw_body`` keeps the exact bytes the provider signed, for audits
    and for re-verification; ``payload`` is the decoded event the appliers read.

    Lifecycle: ``received`` on arrival; then ``applied``, ``ignored`` (it can never
    matter: the reason is in ``note``), ``waiting`` (its subject, ``waiting_for``, is
    not known yet), ``retrying`` (a passing error; tried again with backoff) or
    ``failed`` (a permanent error, or out of attempts; a person may replay it). Every
    unfinished event carries ``next_attempt_at``: the sweep queues it again once that
    has passed, so an event whose task died with its worker is late, never lost.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"
        WAITING = "waiting", "Waiting for its subject"
        RETRYING = "retrying", "Retrying"

    # Not finished: the sweep looks at these.
    UNFINISHED = (Status.RECEIVED, Status.WAITING, Status.RETRYING)
    # May be applied (a failed one by a person's replay).
    APPLICABLE = (*UNFINISHED, Status.FAILED)

    provider = models.CharField(max_length=16, choices=Provider.choices)
    event_id = models.CharField(
        max_length=255, help_text="Stripe event id, App Store notificationUUID, Pub/Sub messageId"
    )
    event_type = models.CharField(max_length=64)
    subscription_ref = models.CharField(max_length=512, blank=True, help_text="Provider subscription id, if known")
    occurred_at = models.DateTimeField(help_text="When the provider says it happened.")
    received_at = models.DateTimeField(default=clock.now)
    payload = models.JSONField(help_text="The decoded event the appliers read.")
    raw_body = models.TextField(blank=True, help_text="The body exactly as received (what was signed).")
    status = FSMField(default=Status.RECEIVED, choices=Status.choices, protected=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep queues it again, unless it is finished by then."
    )
    waiting_for = models.CharField(
        max_length=512, blank=True, default="", db_default="", help_text="The subject it waits for (waiting)."
    )
    last_error = models.TextField(blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True, help_text="Why it was ignored, or what applying did.")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id"], name="uniq_webhook_provider_event"),
        ]
        indexes = [
            models.Index(fields=["status", "-received_at"], name="webhook_status_time_idx"),
            models.Index(fields=["subscription_ref"], name="webhook_subscription_ref_idx"),
            # The sweep's query: small, since finished events (nearly all) are left out.
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_due_idx",
                condition=models.Q(status__in=["received", "waiting", "retrying"]),
            ),
            models.Index(
                fields=["provider", "waiting_for"],
                name="webhook_waiting_for_idx",
                condition=models.Q(status="waiting"),
            ),
        ]
        permissions = [("replay_webhookevent", "Can replay a webhook event")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.event_type} {self.event_id}"

    @transition(field=status, source=APPLICABLE, target=Status.APPLIED)
    def mark_applied(self, note: str = ""):
        self.applied_at = clock.now()
        self.last_error = ""
        self.waiting_for = ""
        self.next_attempt_at = None
        self.note = note[:200]

    @transition(field=status, source=APPLICABLE, target=Status.IGNORED)
    def mark_ignored(self, note: str = ""):
        self.applied_at = clock.now()
        self.waiting_for = ""
        self.next_attempt_at = None
        self.note = note[:200]

    @transition(field=status, source=APPLICABLE, target=Status.WAITING)
    def mark_waiting(self, *, subject: str, error: str, next_attempt_at):
        self.waiting_for = subject[:512]
        self.last_error = error[:4000]
        self.next_attempt_at = next_attempt_at

    @transition(field=status, source=APPLICABLE, target=Status.RETRYING)
    def mark_retrying(self, *, error: str, next_attempt_at):
        self.waiting_for = ""
        self.last_error = error[:4000]
        self.next_attempt_at = next_attempt_at

    @transition(field=status, source=APPLICABLE, target=Status.FAILED)
    def mark_failed(self, error: str = ""):
        self.waiting_for = ""
        self.next_attempt_at = None
        self.last_error = error[:4000]

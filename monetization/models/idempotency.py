from django.db import models

from monetization import clock


class IdempotencyKey(models.Model):
    """The first response to a money-moving POST, replayed for a repeated ``Idempotency-Key``.

    ``scope`` names who asked and where (``user:<id>:<endpoint>``), so two
    callers can use the same key without colliding. ``response_status`` is
    null while the first request is still running: a duplicate arriving then
    gets 409 instead of a second refund. Rows live at least
    ``settings.IDEMPOTENCY_KEY_TTL`` (purged by a periodic task).
    """

    scope = models.CharField(max_length=200)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=clock.now, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="uniq_idempotency_scope_key")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"

    @property
    def in_progress(self) -> bool:
        return self.response_status is None

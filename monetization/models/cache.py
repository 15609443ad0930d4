from django.contrib.postgres.fields import ArrayField
from django.db import models

from monetization import clock


class CacheInvalidation(models.Model):
    """Cache keys that must be deleted, written in the transaction that made their entries wrong.

    One row per invalidation, however many keys it names (``keys``; ``key`` for a single one): a
    sweep chunk dropping the entitlements of thousands of customers writes one row, not thousands.

    The row outlives a cache outage: the committing process deletes the key and the row after
    commit; should the cache be unreachable then, readers and a periodic task retry from these
    rows until the delete succeeds (monetization.services.cache_invalidation). Revocations
    (subscriptions, grants, API keys) are enforced this way whatever the cache does.
    """

    key = models.CharField(max_length=300, blank=True, default="", db_default="")
    keys = ArrayField(models.CharField(max_length=300), default=list, db_default=[])
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.key or f"{len(self.keys)} keys"

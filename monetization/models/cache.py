from django.db import models

from monetization import clock


class CacheInvalidation(models.Model):
    """A cache key that must be deleted, written in the transaction that made its entry wrong.

    The row outlives a cache outage: the committing process deletes the key and the row after
    commit; should the cache be unreachable then, readers and a periodic task retry from these
    rows until the delete succeeds (monetization.services.cache_invalidation). Revocations
    (subscriptions, grants, API keys) are enforced this way whatever the cache does.
    """

    key = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.key

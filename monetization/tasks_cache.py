"""Cache invalidations a cache outage left pending, applied from the database (scheduled every few seconds)."""

from celery import shared_task

from monetization.cache import CACHE_ERRORS
from monetization.services.cache_invalidation import cache_invalidations_flush


@shared_task(name="monetization.tasks_cache.cache_invalidations_flush_task", ignore_result=True)
def cache_invalidations_flush_task() -> int:
    try:
        return cache_invalidations_flush()
    except CACHE_ERRORS:
        return 0  # still unreachable: the rows wait for the next run (and for readers' own checks)

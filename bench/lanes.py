"""A benchmark keeps to the Redis database its run was given (REDIS_URL): the cache and the broker.

Other runs and the tests use other databases of the same Redis; nothing here flushes or queues
outside this one (BENCH_BROKER_URL moves the broker elsewhere).
"""

from __future__ import annotations

import os


def broker_url() -> str:
    """BENCH_BROKER_URL, else the run's own REDIS_URL database: Celery's queue keys sit beside the cache's
    prefixed keys without touching them."""
    url = os.environ.get("BENCH_BROKER_URL") or os.environ.get("REDIS_URL")
    if not url:
        raise RuntimeError("Set REDIS_URL (make bench does) or BENCH_BROKER_URL.")
    return url


def cache_clear() -> int:
    """Delete this project's cache keys (``<KEY_PREFIX>:*``) and nothing else in the cache's database;
    ``cache.clear()`` would flush the whole database, a broker's queue with it. Returns how many went."""
    from django.conf import settings
    from django.core.cache import cache

    location = settings.CACHES["default"].get("LOCATION")
    if "redis" not in settings.CACHES["default"]["BACKEND"].lower() or not location:
        cache.clear()  # an in-process cache holds nothing else
        return 0
    import redis

    client = redis.Redis.from_url(location)
    deleted, batch = 0, []
    for key in client.scan_iter(match=f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:*", count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    client.close()
    return deleted

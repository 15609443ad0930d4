"""API throttling: one fixed-window counter per API key, staff user or anonymous IP.

DRF's SimpleRateThrottle keeps a list of every request timestamp in the
window and re-pickles it on each request: at client-app rates (thousands a
minute per key) that list is the most expensive thing on the hot path. A
counter costs one Redis round trip (INCR + EXPIRE in a pipeline). The price
is the usual fixed-window burst: up to twice the rate across a window edge.
"""

from __future__ import annotations

import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache  # also matches monetization.cache.RedisCache
from rest_framework.throttling import SimpleRateThrottle

from monetization.api.authentication import ApiClient
from monetization.cache import CACHE_ERRORS

# Per-process counters for while Redis is unreachable: a ceiling still holds (per process), and
# requests are answered from the database instead of failing.
_local_counts: dict[str, int] = {}


def _count_locally(key: str) -> int:
    window = key.rsplit(":", 1)[-1]
    if any(not k.endswith(f":{window}") for k in list(_local_counts)[:1]):
        _local_counts.clear()  # a new window: the old counters are done
    _local_counts[key] = count = _local_counts.get(key, 0) + 1
    return count


def _count(key: str, timeout: int, prefetch: list[str]) -> tuple[int, dict]:
    """Increment the window's counter (created with an expiry on first use) and return it,
    with the values of the ``prefetch`` cache keys read in the same Redis round trip."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        if getattr(backend, "is_down", False):
            return _count_locally(key), {}
        try:
            return _count_in_redis(backend, key, timeout, prefetch)
        except CACHE_ERRORS as exc:
            if hasattr(backend, "failed"):
                backend.failed(exc)
            return _count_locally(key), {}
    values = backend.get_many(prefetch) if prefetch else {}
    backend.add(key, 0, timeout)
    try:
        return backend.incr(key), values
    except ValueError:  # expired between add and incr
        backend.add(key, 1, timeout)
        return 1, values


def _count_in_redis(backend, key: str, timeout: int, prefetch: list[str]) -> tuple[int, dict]:
    """One Redis round trip: INCR and EXPIRE in a pipeline, with the prefetched keys' values."""
    full_key = backend.make_and_validate_key(key)
    client = backend._cache.get_client(full_key, write=True)
    pipe = client.pipeline(transaction=False)
    pipe.incr(full_key)
    pipe.expire(full_key, timeout, nx=True)
    if prefetch:
        pipe.mget([backend.make_and_validate_key(k) for k in prefetch])
    results = pipe.execute()
    values = {}
    if prefetch:
        loads = backend._cache._serializer.loads
        values = {k: loads(v) for k, v in zip(prefetch, results[2], strict=True) if v is not None}
    return int(results[0]), values


# Where the WSGI fast path (subscriptions.api.fast_path) leaves ``(bucket, count, wait)`` when it
# counted a request over the rate and handed it to Django for the 429: counted once, not twice.
# Not an HTTP_* name, so no client header can set it.
COUNTED_ENVIRON_KEY = "monetization.throttle.counted"


class ClientThrottle(SimpleRateThrottle):
    """One bucket per API key, per staff user, or per anonymous IP."""

    scope = "client"

    def get_cache_key(self, request, view):
        user = request.user
        if isinstance(user, ApiClient):
            ident = f"key:{user.key_id}"
        elif user is not None and getattr(user, "is_authenticated", False):
            ident = f"user:{user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def hit(self, key: str, prefetch: list[str]) -> tuple[int, dict]:
        """Count one request in ``key``'s current window: the window's count so far (also kept
        as ``self.counted``), and the values of the ``prefetch`` cache keys, read in the same round trip."""
        now = time.time()
        window = int(now // self.duration)
        count, values = _count(f"{key}:{window}", self.duration + 1, prefetch)
        self._wait = (window + 1) * self.duration - now
        self.counted = (key, count, self._wait)
        return count, values

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        counted = request.META.get(COUNTED_ENVIRON_KEY)
        if counted is not None and counted[0] == key:
            _, count, self._wait = counted
            return count <= self.num_requests
        # A view on the hot path may name cache keys it will read: they come back with the
        # counter in one round trip, as ``request.cache_prefetched`` (absent key = cache miss).
        prefetch_keys = getattr(view, "throttle_prefetch_keys", None)
        prefetch = list(prefetch_keys(request)) if prefetch_keys else []
        count, values = self.hit(key, prefetch)
        if prefetch:
            request.cache_prefetched = values
        return count <= self.num_requests

    def wait(self):
        return getattr(self, "_wait", None)

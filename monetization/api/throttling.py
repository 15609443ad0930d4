"""API throttling: fixed-window counters per API key (and below it per end customer and per IP),
per staff user or per anonymous IP.

DRF's SimpleRateThrottle keeps a list of every request timestamp in the
window and re-pickles it on each request: at client-app rates (thousands a
minute per key) that list is the most expensive thing on the hot path. A
counter costs one Redis round trip (INCR + EXPIRE in a pipeline). The price
is the usual fixed-window burst: up to twice the rate across a window edge.
"""

from __future__ import annotations

import os
import threading
import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache  # also matches monetization.cache.RedisCache
from redis.exceptions import NoScriptError
from rest_framework.throttling import SimpleRateThrottle

from monetization.api.authentication import ApiClient
from monetization.cache import CACHE_ERRORS

# Per-process counters for while Redis is unreachable: a ceiling still holds (per process), and
# requests are answered from the database instead of failing.
_local_counts: dict[str, int] = {}
_LOCAL_MAX_KEYS = 100_000


def _count_locally(keys: list[str]) -> list[int]:
    if len(_local_counts) > _LOCAL_MAX_KEYS:
        _local_counts.clear()  # old windows' counters: a window key is never counted again
    counts = []
    for key in keys:
        _local_counts[key] = count = _local_counts.get(key, 0) + 1
        counts.append(count)
    return counts


def _count(keys: list[tuple[str, int]], prefetch: list[str]) -> tuple[list[int], dict]:
    """Increment each window counter (``(key, timeout)``, created with an expiry on first use) and
    return their counts, with the values of the ``prefetch`` cache keys, in one Redis round trip."""
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        if getattr(backend, "is_down", False):
            return _count_locally([k for k, _ in keys]), {}
        try:
            return _count_in_redis(backend, keys, prefetch)
        except CACHE_ERRORS as exc:
            if hasattr(backend, "failed"):
                backend.failed(exc)
            return _count_locally([k for k, _ in keys]), {}
    values = backend.get_many(prefetch) if prefetch else {}
    counts = []
    for key, timeout in keys:
        backend.add(key, 0, timeout)
        try:
            counts.append(backend.incr(key))
        except ValueError:  # expired between add and incr
            backend.add(key, 1, timeout)
            counts.append(1)
    return counts, values


def _count_in_redis(backend, keys: list[tuple[str, int]], prefetch: list[str]) -> tuple[list[int], dict]:
    """One Redis round trip: INCR and EXPIRE per counter in a pipeline, with the prefetched keys' values."""
    client = backend._cache.get_client(None, write=True)
    pipe = client.pipeline(transaction=False)
    for key, timeout in keys:
        full_key = backend.make_and_validate_key(key)
        pipe.incr(full_key)
        pipe.expire(full_key, timeout, nx=True)
    if prefetch:
        pipe.mget([backend.make_and_validate_key(k) for k in prefetch])
    results = pipe.execute()
    counts = [int(results[2 * i]) for i in range(len(keys))]
    values = {}
    if prefetch:
        loads = backend._cache._serializer.loads
        values = {k: loads(v) for k, v in zip(prefetch, results[-1], strict=True) if v is not None}
    return counts, values


# Reads KEYS[1..n] (n = ARGV[1]); only when all exist, INCRs each remaining key (a window counter)
# and gives it the expiry ARGV[i + 1] if it has none, as _count_in_redis does. Returns the values,
# then the counts when counted. A script so that a miss (which Django answers, and counts) is
# never counted here: reading and counting in one round trip, without counting on a guess.
_COUNT_IF_CACHED = """
local n = tonumber(ARGV[1])
local found = redis.call('MGET', unpack(KEYS, 1, n))
for i = 1, n do
  if not found[i] then return found end
end
for i = n + 1, #KEYS do
  found[i] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[i - n + 1], 'NX')
end
return found
"""

# Takes back one count from each existing counter (never creates one: an expired window stays gone).
_UNCOUNT = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('DECR', KEYS[i]) end
end
return 0
"""

_scripts: dict[tuple[int, str], object] = {}


def _script(client, source: str):
    # redis-py's Script runs EVALSHA (one round trip), loading the script on NOSCRIPT.
    found = _scripts.get((id(client), source))
    if found is None:
        found = _scripts[(id(client), source)] = client.register_script(source)
    return found


# The hot path's own connection per thread and Redis client (by the client's id: (pid, client, connection)):
# a script run on it skips redis-py's per-command machinery (pool checkout with its readiness poll
# and metrics, retry wrapper, bookkeeping), about a third of a fast-path hit's CPU, profiled.
_direct = threading.local()


def run_script(backend, source: str, keys: list, args: list):
    """EVALSHA of ``source`` on ``keys`` and ``args`` in one round trip on this thread's own
    connection to ``backend``'s Redis (a monetization.cache.RedisCache), loading the script when
    Redis does not know it. Raises a cache error (the connection is then dropped, never reused
    half-read)."""
    client = backend._cache.get_client(None, write=True)
    script = _script(client, source)
    pid = os.getpid()
    connections = _direct.__dict__.setdefault("connections", {})
    found = connections.get(id(client))
    if found is None or found[0] != pid or found[1] is not client:  # a fork never shares the parent's socket
        pool = client.connection_pool
        found = connections[id(client)] = (pid, client, pool.connection_class(**pool.connection_kwargs))
    connection = found[2]
    try:
        connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return connection.read_response()
    except NoScriptError:  # a restarted or flushed Redis: redis-py loads it and runs it again
        return script(keys=keys, args=args, client=client)
    except BaseException:
        connection.disconnect()
        raise


def count_if_cached(backend, read: list[str], counters: list[tuple[str, int]]) -> tuple[list, list[int]] | None:
    """The values of the ``read`` cache keys and the counts of ``counters`` (``(key, expiry)``)
    after one increment each, in one Redis round trip; None, with nothing counted, when any of
    ``read`` is not cached or Redis is unreachable (a failure marks the backend down).
    ``backend`` is a Redis cache (monetization.cache.RedisCache)."""
    if backend.is_down:
        return None
    # Keys made without Django's per-character memcached check, as RedisCache.delete_many does:
    # our own keys, and Redis has no such limits.
    make = backend.make_key
    try:
        found = run_script(
            backend,
            _COUNT_IF_CACHED,
            [make(k) for k in read] + [make(k) for k, _ in counters],
            [len(read), *(timeout for _, timeout in counters)],
        )
    except CACHE_ERRORS as exc:
        backend.failed(exc)
        return None
    if len(found) < len(read) + len(counters) or any(v is None for v in found[: len(read)]):
        return None
    loads = backend._cache._serializer.loads
    return [loads(v) for v in found[: len(read)]], [int(c) for c in found[len(read) :]]


def uncount(backend, counters: list[tuple[str, int]]) -> None:
    """Take back a count of :func:`count_if_cached` for a request Django answers without counting
    (a wrong secret, a missing scope). Raises a cache error."""
    client = backend._cache.get_client(None, write=True)
    _script(client, _UNCOUNT)(keys=[backend.make_and_validate_key(k) for k, _ in counters], client=client)


# Where the WSGI fast path (subscriptions.api.fast_path) leaves ``(bucket, allowed, wait)`` when it
# counted a request over the rate and handed it to Django for the 429: counted once, not twice.
# Not an HTTP_* name, so no client header can set it.
COUNTED_ENVIRON_KEY = "monetization.throttle.counted"


_now = time.time  # the windows' clock (a test may run it faster than real time)


def window_clock() -> float:
    """The time the windows are counted by (see :meth:`ClientThrottle.counters`)."""
    return _now()


# Where the fast path names the customer of a request it counts (the entitlements path's id).
CUSTOMER_ENVIRON_KEY = "monetization.throttle.customer"


class ClientThrottle(SimpleRateThrottle):
    """Buckets counted together, in one Redis round trip; a request passes when none is over its rate.

    - ``client``: per API key (all of one app's users share it: sized for a production app),
      per staff user, or per IP for anonymous requests;
    - for an API key, also ``customer``: per end customer it acts for (``X-Acting-Customer``,
      or the customer the URL names), and ``client_ip``: per IP calling with that key. Both sit
      below the key's ceiling, so one user or one address cannot spend a whole app's share.

    A scope without a rate in ``DEFAULT_THROTTLE_RATES`` is not counted.
    """

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

    def buckets(self, request, view, key: str) -> list[tuple[str, int, int]]:
        """``(cache key, allowed requests, window seconds)`` of every bucket this request counts in."""
        found = [(key, self.num_requests, self.duration)]
        user = request.user
        if not isinstance(user, ApiClient):
            return found
        customer = (
            request.META.get("HTTP_X_ACTING_CUSTOMER")
            or (getattr(view, "kwargs", None) or {}).get("external_id")
            or request.META.get(CUSTOMER_ENVIRON_KEY)
        )
        extra = [("client_ip", f"key:{user.key_id}:ip:{self.get_ident(request)}")]
        if customer:
            extra.append(("customer", f"key:{user.key_id}:customer:{customer[:255]}"))
        for scope, ident in extra:
            rate = self.THROTTLE_RATES.get(scope)
            if rate:
                num, duration = self.parse_rate(rate)
                found.append((self.cache_format % {"scope": scope, "ident": ident}, num, duration))
        return found

    def hit(self, buckets: list[tuple[str, int, int]], prefetch: list[str]) -> tuple[bool, dict]:
        """Count one request in each bucket's current window: whether all are within their rates
        (also kept, with the wait, as ``self.counted``), and the values of the ``prefetch`` cache keys."""
        now = _now()
        counts, values = _count(self.counters(buckets, now), prefetch)
        return self.judge(buckets, counts, now), values

    @staticmethod
    def counters(buckets: list[tuple[str, int, int]], now: float) -> list[tuple[str, int]]:
        """``(counter key, expiry seconds)`` of each bucket's window at ``now``."""
        return [(f"{key}:{int(now // duration)}", duration + 1) for key, _, duration in buckets]

    def judge(self, buckets: list[tuple[str, int, int]], counts: list[int], now: float) -> bool:
        """Whether the request, counted at ``now`` to ``counts``, is within every bucket's rate
        (also kept, with the wait, as ``self.counted``)."""
        waits = [
            (int(now // duration) + 1) * duration - now
            for (_, num, duration), count in zip(buckets, counts, strict=True)
            if count > num
        ]
        allowed = not waits
        self._wait = max(waits) if waits else 0
        self.counted = (buckets[0][0], allowed, self._wait)
        return allowed

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        counted = request.META.get(COUNTED_ENVIRON_KEY)
        if counted is not None and counted[0] == key:
            _, allowed, self._wait = counted
            return allowed
        # A view on the hot path may name cache keys it will read: they come back with the
        # counters in one round trip, as ``request.cache_prefetched`` (absent key = cache miss).
        prefetch_keys = getattr(view, "throttle_prefetch_keys", None)
        prefetch = list(prefetch_keys(request)) if prefetch_keys else []
        allowed, values = self.hit(self.buckets(request, view, key), prefetch)
        if prefetch:
            request.cache_prefetched = values
        return allowed

    def wait(self):
        return getattr(self, "_wait", None)

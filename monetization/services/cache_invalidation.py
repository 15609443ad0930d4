"""Cache invalidations that survive a cache outage: degrade to correct, never to open.

A change that makes cached answers wrong (a revoked subscription, grant or API key) names the
cache keys with :func:`cache_invalidate` inside its transaction. The keys are written as one
:class:`CacheInvalidation` row in that same transaction, so the need to forget it commits with
the change. After commit the keys are deleted and the row with them; should the cache be
unreachable, the rows stay and are retried:

- by every process that reads those caches, before it trusts a cached answer: at most once
  per ``CACHE_INVALIDATION_CHECK_INTERVAL`` seconds it looks for pending rows
  (:func:`cache_trusted`), and while some cannot be deleted it reads PostgreSQL instead;
- by the periodic task ``monetization.tasks_cache.cache_invalidations_flush``.

So a revocation committed while Redis is down is enforced from the database during the
outage, and within the check interval once Redis is back with its old entries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection, transaction

from monetization import clock
from monetization.bulk import TEXT_ARRAY_FROM_JSON, text_array_param
from monetization.cache import CACHE_ERRORS
from monetization.models import CacheInvalidation

logger = logging.getLogger(__name__)

FLUSH_BATCH = 1000

_next_check = 0.0  # per process: when to look for pending invalidations again (time.monotonic)


def cache_invalidate(keys: Iterable[str], *, then=None) -> None:
    """Forget these cache keys once the current transaction commits, even across a cache outage.

    ``then`` (optional) runs after a successful delete, still after commit: e.g. to write the
    committed value in place of the deleted one. A cache error after commit is logged, never
    raised: the change is committed and the rows are retried.
    """
    keys = sorted(set(keys))
    if not keys:
        return
    if then is None and _pending(keys):
        return  # this transaction already forgets them once it commits (a catalog re-save, a seed run again)
    # One row whatever the count (the sweep invalidates a chunk's customers at once): a row per
    # key cost the 1M sweep 200,000 rows inserted and deleted.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {CacheInvalidation._meta.db_table} (key, keys, created_at) "  # noqa: S608
            f"VALUES ('', {TEXT_ARRAY_FROM_JSON.format('%s')}, %s) RETURNING id",
            [text_array_param(keys), clock.now()],
        )
        ids = [cursor.fetchone()[0]]

    def delete():
        try:
            for i in range(0, len(keys), FLUSH_BATCH):  # in slices: one huge DEL would block Redis for everyone else
                cache.delete_many(keys[i : i + FLUSH_BATCH])
        except CACHE_ERRORS as exc:
            logger.warning("Cache unreachable after commit; %d invalidation(s) left for retry: %s", len(keys), exc)
            _recheck_soon()
            return
        _rows_delete(ids)
        if then is not None:
            then()

    delete.invalidates = keys
    transaction.on_commit(delete, robust=True)


def _pending(keys: list[str]) -> bool:
    """Whether the current transaction already holds an invalidation of exactly these keys. Django drops the
    commit callbacks of a rolled-back savepoint, so a pending one is one whose row is still there."""
    return connection.in_atomic_block and any(
        getattr(func, "invalidates", None) == keys for _, func, _ in connection.run_on_commit
    )


def _rows_delete(ids: list[int]) -> None:
    # One statement, no transaction of its own (a queryset delete would add BEGIN and COMMIT).
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {CacheInvalidation._meta.db_table} WHERE id = ANY(%s)", [ids])  # noqa: S608


def cache_invalidations_flush(*, limit: int = FLUSH_BATCH) -> int:
    """Delete the cache keys of pending invalidation rows, then the rows. Raises a cache error
    when the cache is still unreachable (the rows stay). Returns how many rows were flushed."""
    flushed = 0
    while True:
        rows = list(CacheInvalidation.objects.order_by("pk").values_list("pk", "key", "keys")[:limit])
        if not rows:
            return flushed
        keys = sorted({k for _, key, more in rows for k in ([key, *more] if key else more)})
        for i in range(0, len(keys), limit):  # in slices: one huge DEL would block Redis for everyone else
            cache.delete_many(keys[i : i + limit])
        _rows_delete([pk for pk, _, _ in rows])
        flushed += len(rows)
        if len(rows) < limit:
            return flushed


def cache_trusted() -> bool:
    """Whether this process may serve entries from the cache it invalidates through these rows.

    Costs nothing between checks; a check is one indexed query (and a flush when rows wait).
    False while pending invalidations cannot be flushed (then read from the database).
    """
    global _next_check
    now = time.monotonic()
    if now < _next_check:
        return True
    try:
        cache_invalidations_flush()
    except CACHE_ERRORS:
        _next_check = 0.0  # look again on the next request
        return False
    except DatabaseError:
        # PostgreSQL down: nothing can be revoked meanwhile, and the cache is all there is to answer from.
        logger.warning("Pending cache invalidations could not be read; serving the cache.", exc_info=True)
        _next_check = now + settings.CACHE_INVALIDATION_CHECK_INTERVAL
        return True
    _next_check = now + settings.CACHE_INVALIDATION_CHECK_INTERVAL
    return True


def cache_trust_check_due() -> bool:
    """Whether the next :func:`cache_trusted` call queries the database (else it costs nothing)."""
    return time.monotonic() >= _next_check


def _recheck_soon() -> None:
    global _next_check
    _next_check = 0.0

"""Client-app API keys: issue (the full key is shown once) and revoke."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from monetization import clock
from monetization.cache import CACHE_ERRORS
from monetization.errors import Conflict, ErrorCode, InvalidInput
from monetization.models import ApiKey
from monetization.services.audit import audit_record
from monetization.services.cache_invalidation import cache_invalidate

KEY_FIELDS = ["name", "prefix", "scopes", "revoked_at"]
_MISSING = {"missing": True}


def api_key_cache_key(prefix: str) -> str:
    """Where the authentication cache keeps a key's row (Redis in production)."""
    return f"apikey:v1:{prefix}"


def api_key_cache_row(obj: ApiKey | None) -> dict:
    """What the authentication cache holds for a key (or for a prefix that has no key)."""
    if obj is None:
        return _MISSING
    return {"id": obj.id, "name": obj.name, "hash": obj.key_hash, "scopes": list(obj.scopes), "revoked": obj.is_revoked}


def _snapshot(key: ApiKey) -> dict:
    # Never the hash: the audit trail is readable by compliance staff.
    return {"name": key.name, "prefix": key.prefix, "scopes": list(key.scopes), "revoked_at": key.revoked_at}


def api_key_create(*, name: str, scopes: Iterable[str], created_by=None) -> tuple[str, ApiKey]:
    """Issue a key for a client app. Returns (full key, row); only the row's hash is kept."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("An API key needs a name (the client app it is for).")
    scopes = sorted(set(scopes))
    if not scopes:
        raise InvalidInput("An API key needs at least one scope.", code=ErrorCode.INVALID_INPUT)
    unknown = [s for s in scopes if s not in ApiKey.Scope.values]
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ApiKey.Scope.values)}.",
            extra={"fields": {"scopes": unknown}},
        )
    full, prefix, key_hash = ApiKey.generate()
    with transaction.atomic():
        key = ApiKey(name=name, prefix=prefix, key_hash=key_hash, scopes=scopes, created_by=created_by)
        key.full_clean()
        key.save()
        audit_record(action="api_key.create", obj=key, actor=created_by, after=_snapshot(key))
    # Overwrite any negative lookup cached for this prefix before it existed.
    _cache_after_commit(key)
    return full, key


def _cache_after_commit(key: ApiKey) -> None:
    """Write the key's committed row to the authentication cache once the transaction commits.

    Readers only ``add`` to that cache, so a request that read the row before the
    commit cannot overwrite this one: a revocation can never be undone by a stale read.
    A cache outage skips the write (readers then load the row from the database).
    """
    row, cache_key = api_key_cache_row(key), api_key_cache_key(key.prefix)
    transaction.on_commit(lambda: cache.set(cache_key, row, settings.API_KEY_CACHE_TTL), robust=True)


def api_key_revoke(*, key: ApiKey, revoked_by=None, reason: str = "") -> ApiKey:
    """Revoke a key at once: the row is marked and the authentication cache entry dropped."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is not None:
            raise Conflict("This API key is already revoked.")
        before = _snapshot(locked)
        locked.revoked_at = clock.now()
        locked.save(update_fields=["revoked_at"])
        audit_record(
            action="api_key.revoke", obj=locked, actor=revoked_by, before=before, after=_snapshot(locked), reason=reason
        )
        # Drop the cached row now where the cache answers; after commit it is deleted again
        # (retried from the database while the cache is unreachable) and the revoked row replaces
        # whatever a concurrent request cached in between.
        row, cache_key = api_key_cache_row(locked), api_key_cache_key(locked.prefix)
        with contextlib.suppress(*CACHE_ERRORS):
            cache.delete(cache_key)
        cache_invalidate([cache_key], then=lambda: cache.set(cache_key, row, settings.API_KEY_CACHE_TTL))
    return locked

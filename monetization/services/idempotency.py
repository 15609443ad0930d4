"""Idempotency keys for money-moving requests (refunds): replay the first answer, refuse a changed request.

:func:`idempotent_run` is the one way to use them, from the API (``monetization.api.idempotency``)
and from the admin alike. The key is claimed by inserting its row *before* the work runs and
committing at once, so a duplicate arriving while the first request is still working finds the
row and gets 409 instead of doing the work twice. When the work finishes its answer (a status
and a JSON body, a refusal included) is stored; later duplicates get it back verbatim for
``IDEMPOTENCY_KEY_TTL`` (at least 24 hours), after which the key is free again. Work that raises
releases the key: nothing was done, the caller may try again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from monetization import clock
from monetization.errors import Conflict, ErrorCode, InvalidInput
from monetization.models import IdempotencyKey


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool = False


def canonical_parameters(params: Any) -> bytes:
    """The request's parsed parameters as canonical JSON: the same JSON in another key order, or the
    same form fields, give the same bytes. A multi-valued form field keeps its list; files count by
    name and size."""

    def plain(value):
        if hasattr(value, "lists"):  # QueryDict / MultiValueDict
            return {k: [plain(v) for v in vs] if len(vs) != 1 else plain(vs[0]) for k, vs in value.lists()}
        if hasattr(value, "read") and hasattr(value, "size"):
            return {"file": getattr(value, "name", ""), "size": value.size}
        return value

    return json.dumps(plain(params), sort_keys=True, separators=(",", ":"), default=str).encode()


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), b"\n", path.encode(), b"\n", body or b""):
        digest.update(part)
    return digest.hexdigest()


def idempotency_claim(*, scope: str, key: str, fingerprint: str) -> IdempotencyKey | None:
    """Claim ``key``. Returns None when claimed now; the stored row when it existed already.

    Raises 422 ``idempotency_key_reused`` for a different request under the same
    key and 409 ``idempotency_key_in_progress`` while the first one still runs. A finished key
    older than ``IDEMPOTENCY_KEY_TTL`` (not purged yet) is expired: it is taken over.
    """
    for _ in range(2):
        try:
            with transaction.atomic():
                IdempotencyKey.objects.create(scope=scope, key=key, fingerprint=fingerprint, created_at=clock.now())
            return None
        except IntegrityError:
            pass
        expired = clock.now() - settings.IDEMPOTENCY_KEY_TTL
        if not IdempotencyKey.objects.filter(
            scope=scope, key=key, created_at__lt=expired, response_status__isnull=False
        ).delete()[0]:
            break
    row = IdempotencyKey.objects.filter(scope=scope, key=key).first()
    if row is None:  # released by the first request between our insert and this read: it may be retried
        raise Conflict(
            "A request with this Idempotency-Key is still being processed.",
            code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
        )
    if row.fingerprint != fingerprint:
        raise InvalidInput(
            "This Idempotency-Key was used for a different request.", code=ErrorCode.IDEMPOTENCY_KEY_REUSED, status=422
        )
    if row.in_progress:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed.",
            code=ErrorCode.IDEMPOTENCY_KEY_IN_PROGRESS,
        )
    return row


def idempotency_complete(*, scope: str, key: str, status: int, body) -> None:
    IdempotencyKey.objects.filter(scope=scope, key=key).update(
        response_status=status, response_body=body, completed_at=clock.now()
    )


def idempotency_release(*, scope: str, key: str) -> None:
    IdempotencyKey.objects.filter(scope=scope, key=key, response_status__isnull=True).delete()


def idempotent_run(*, scope: str, key: str, fingerprint: str, work: Callable[[], tuple[int, Any]]) -> Answer:
    """Do ``work`` at most once for (``scope``, ``key``); it returns (status, JSON body), which is stored.

    A repeat of the same request gets the stored answer (``replayed``); a different request under the
    key is 422 ``idempotency_key_reused``; a repeat while the first still runs, 409
    ``idempotency_key_in_progress``. Work that raises releases the key and the error propagates.
    """
    stored = idempotency_claim(scope=scope, key=key, fingerprint=fingerprint)
    if stored is not None:
        return Answer(stored.response_status, stored.response_body, replayed=True)
    try:
        status, body = work()
    except BaseException:
        idempotency_release(scope=scope, key=key)
        raise
    idempotency_complete(scope=scope, key=key, status=status, body=body)
    return Answer(status, body)


def idempotency_keys_purge(*, older_than=None) -> int:
    """Delete keys older than the TTL (>= 24 hours). Returns how many went."""
    cutoff = clock.now() - (older_than or settings.IDEMPOTENCY_KEY_TTL)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted

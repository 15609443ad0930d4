"""Idempotency-Key for money-moving POSTs (refunds): replay the first answer, refuse a changed body.

The key is claimed by inserting its row *before* the work runs and
committing at once, so a duplicate arriving while the first request is still
working finds the row and gets 409 instead of doing the work twice. When the
work finishes its response is stored; later duplicates get it back verbatim.
"""

from __future__ import annotations

import functools
import hashlib

from django.conf import settings
from django.db import IntegrityError, transaction
from rest_framework.response import Response

from monetization import clock
from monetization.errors import Conflict, ErrorCode, InvalidInput
from monetization.models import IdempotencyKey

HEADER = "Idempotency-Key"


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), b"\n", path.encode(), b"\n", body or b""):
        digest.update(part)
    return digest.hexdigest()


def _scope(request, endpoint: str) -> str:
    user = request.user
    key_id = getattr(user, "key_id", None)
    who = f"apikey:{key_id}" if key_id is not None else f"user:{getattr(user, 'pk', 'anon')}"
    return f"{who}:{endpoint}"


def idempotency_claim(*, scope: str, key: str, fingerprint: str) -> IdempotencyKey | None:
    """Claim ``key``. Returns None when claimed now; the stored row when it existed already.

    Raises 422 ``idempotency_key_reused`` for a different request under the same
    key and 409 ``idempotency_key_in_progress`` while the first one still runs.
    """
    try:
        with transaction.atomic():
            IdempotencyKey.objects.create(scope=scope, key=key, fingerprint=fingerprint, created_at=clock.now())
        return None
    except IntegrityError:
        pass
    row = IdempotencyKey.objects.get(scope=scope, key=key)
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


def idempotent(endpoint: str, *, required: bool = True):
    """Decorate an APIView ``post``: the same key and body replay the first response.

    An error raised by the view releases the key (nothing was done; the
    caller may try again); a response of any status is stored and replayed.
    """

    def decorate(view_method):
        @functools.wraps(view_method)
        def wrapper(self, request, *args, **kwargs):
            key = request.headers.get(HEADER, "").strip()
            if not key:
                if required:
                    raise InvalidInput(
                        f"Send an {HEADER} header (a unique value per intended operation).",
                        code=ErrorCode.IDEMPOTENCY_KEY_REQUIRED,
                    )
                return view_method(self, request, *args, **kwargs)
            if len(key) > 255:
                raise InvalidInput(f"{HEADER} is at most 255 characters.")
            scope = _scope(request, endpoint)
            fingerprint = request_fingerprint(request.method, request.get_full_path(), request.body)
            stored = idempotency_claim(scope=scope, key=key, fingerprint=fingerprint)
            if stored is not None:
                response = Response(stored.response_body, status=stored.response_status)
                response["Idempotent-Replayed"] = "true"
                return response
            try:
                response = view_method(self, request, *args, **kwargs)
            except BaseException:
                idempotency_release(scope=scope, key=key)
                raise
            idempotency_complete(scope=scope, key=key, status=response.status_code, body=response.data)
            return response

        return wrapper

    return decorate


def idempotency_keys_purge(*, older_than=None) -> int:
    """Delete keys older than the TTL (>= 24 hours). Returns how many went."""
    cutoff = clock.now() - (older_than or settings.IDEMPOTENCY_KEY_TTL)
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
    return deleted

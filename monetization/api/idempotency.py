"""The ``Idempotency-Key`` header on API POSTs: the HTTP side of monetization.services.idempotency."""

from __future__ import annotations

import functools

from rest_framework.response import Response

from monetization.errors import ErrorCode, InvalidInput
from monetization.services.idempotency import idempotent_run, request_fingerprint

HEADER = "Idempotency-Key"


def _scope(request, endpoint: str) -> str:
    user = request.user
    key_id = getattr(user, "key_id", None)
    who = f"apikey:{key_id}" if key_id is not None else f"user:{getattr(user, 'pk', 'anon')}"
    return f"{who}:{endpoint}"


def idempotent(endpoint: str, *, required: bool = True):
    """Decorate an APIView ``post``: the same key and body replay the first response.

    An error raised by the view releases the key (nothing was done; the caller may try again); a
    response of any status is stored and replayed, marked ``Idempotent-Replayed: true``.
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
            answered: list[Response] = []

            def work() -> tuple[int, object]:
                response = view_method(self, request, *args, **kwargs)
                answered.append(response)
                return response.status_code, response.data

            answer = idempotent_run(
                scope=_scope(request, endpoint),
                key=key,
                fingerprint=request_fingerprint(request.method, request.get_full_path(), request.body),
                work=work,
            )
            if not answer.replayed:
                return answered[0]
            response = Response(answer.body, status=answer.status)
            response["Idempotent-Replayed"] = "true"
            return response

        return wrapper

    return decorate

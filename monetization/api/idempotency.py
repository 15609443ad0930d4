"""The ``Idempotency-Key`` header on API POSTs: the HTTP side of monetization.services.idempotency."""

from __future__ import annotations

import functools

from rest_framework.response import Response

from monetization.api.errors import api_exception_handler
from monetization.errors import ErrorCode, InvalidInput
from monetization.services.idempotency import canonical_parameters, idempotent_run, request_fingerprint

HEADER = "Idempotency-Key"


def _scope(request, endpoint: str) -> str:
    user = request.user
    key_id = getattr(user, "key_id", None)
    who = f"apikey:{key_id}" if key_id is not None else f"user:{getattr(user, 'pk', 'anon')}"
    return f"{who}:{endpoint}"


def idempotent(endpoint: str, *, required: bool = True):
    """Decorate an APIView ``post``: the same key and parameters replay the first response.

    The parameters are compared parsed (JSON in another key order, or the same fields as a form,
    are the same request). A refusal (4xx) is an answer like any other: stored and replayed, so a
    retry cannot turn a refused request into a different outcome. Only an unexpected error or a
    5xx (an outage, a provider down) releases the key: the caller may try again. Replays are marked
    ``Idempotent-Replayed: true``.
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
                try:
                    response = view_method(self, request, *args, **kwargs)
                except Exception as exc:
                    response = api_exception_handler(exc, {"view": self, "request": request})
                    if response is None or response.status_code >= 500:
                        raise
                answered.append(response)
                return response.status_code, response.data

            # request.data, not request.body: a multipart body has been read by the parser already.
            params = {"query": request.query_params, "data": request.data}
            answer = idempotent_run(
                scope=_scope(request, endpoint),
                key=key,
                fingerprint=request_fingerprint(request.method, request.path, canonical_parameters(params)),
                work=work,
            )
            if not answer.replayed:
                return answered[0]
            response = Response(answer.body, status=answer.status)
            response["Idempotent-Replayed"] = "true"
            return response

        return wrapper

    return decorate

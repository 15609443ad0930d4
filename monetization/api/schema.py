"""OpenAPI postprocessing: what drf-spectacular cannot see by itself.

- Every operation lists the error answers the server can give (400, 401, 403, 404, 429, 503 and, for
  writes, 409, 413, 415, 422), all ``{"code", "detail"}`` (``monetization.api.errors``): a client,
  and the fuzzer in tests/backoffice/test_schema_fuzz.py, can hold the server to them.
- The plain Django views: the providers' webhooks and ``/healthz``.
"""

from __future__ import annotations

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error answer: a stable machine-readable ``code`` (switch on it) and a ``detail`` for people.",
    "properties": {
        "code": {"type": "string", "example": "invalid_input"},
        "detail": {"type": "string"},
        # Usually the messages per field; a list for a refusal of the whole body.
        "fields": {"description": "invalid_input: the messages per field"},
    },
    "required": ["code", "detail"],
}
ERRORS = {
    "400": "Invalid input (code names the refusal: invalid_input, reason_required, ...); nothing changed",
    "401": "Not authenticated",
    "403": "Authenticated without the permission or scope (permission_denied, api_key_scope_missing, ...)",
    "404": "No such object (not_found or a domain code); also any path no URL matches",
    "429": "Throttled: retry after Retry-After",
    "503": "A backing service is unavailable: retry after Retry-After",
}
WRITE_ERRORS = {
    "409": "Conflict with the object's state (illegal_transition, idempotency_key_in_progress, ...)",
    "413": "Body too large",
    "415": "Unsupported media type",
    "422": "Idempotency-Key reused for a different request (idempotency_key_reused)",
}
WRITES = ("post", "put", "patch", "delete")


def _errors(codes: dict[str, str]) -> dict:
    return {
        code: {"description": text, "content": {"application/json": {"schema": ERROR_REF}}}
        for code, text in codes.items()
    }


def _webhook(summary: str, *, header: str | None = None, query: str | None = None) -> dict:
    parameters = []
    if header:
        parameters.append({"in": "header", "name": header, "required": True, "schema": {"type": "string"}})
    if query:
        parameters.append({"in": "query", "name": query, "required": True, "schema": {"type": "string"}})
    return {
        "post": {
            "operationId": summary.lower().replace(" ", "_"),
            "summary": summary,
            "description": (
                "Authenticated by the provider's signature (no API key, no session). 200 once the event is "
                "stored (or was already); 400 invalid_signature or malformed_payload stores nothing; 404 "
                "provider_disabled for a provider this deployment does not use; 503 provider_unavailable "
                "when it cannot be verified now (the provider retries)."
            ),
            "tags": ["webhooks"],
            "security": [],
            "parameters": parameters,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
            },
            "responses": {
                "200": {
                    "description": "Stored",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"received": {"type": "integer"}, "duplicates": {"type": "integer"}},
                                "required": ["received", "duplicates"],
                            }
                        }
                    },
                },
                **_errors({k: ERRORS[k] for k in ("400", "404", "503")}),
                **_errors({k: WRITE_ERRORS[k] for k in ("413", "415")}),
            },
        }
    }


PLAIN_VIEWS = {
    "/api/v1/webhooks/stripe": _webhook("Stripe webhook", header="Stripe-Signature"),
    "/api/v1/webhooks/stripe-connect": _webhook("Stripe Connect webhook", header="Stripe-Signature"),
    "/api/v1/webhooks/app-store": _webhook("App Store Server Notifications V2"),
    "/api/v1/webhooks/google-play": _webhook("Google Play RTDN push", query="token"),
    "/healthz": {
        "get": {
            "operationId": "healthz",
            "summary": "Liveness and database check",
            "tags": ["health"],
            "security": [],
            "responses": {
                "200": {
                    "description": "Serving, and the database answers",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"status": {"type": "string", "enum": ["ok"]}},
                                "required": ["status"],
                            }
                        }
                    },
                },
                **_errors({"503": ERRORS["503"]}),
            },
        }
    },
}


def postprocess_error_responses(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry (after its enum hook)."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    paths = result.setdefault("paths", {})
    for path, operations in PLAIN_VIEWS.items():
        paths.setdefault(path, operations)
    for operations in paths.values():
        for method, operation in operations.items():
            if method not in ("get", *WRITES):
                continue
            responses = operation.setdefault("responses", {})
            codes = {**ERRORS, **(WRITE_ERRORS if method in WRITES else {})}
            if operation.get("security") == []:  # no authentication: no 401/403/429
                codes = {k: v for k, v in codes.items() if k not in ("401", "403", "429")}
            for code, error in _errors(codes).items():
                responses.setdefault(code, error)
    return result

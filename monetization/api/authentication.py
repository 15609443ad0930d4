"""Client-app authentication: ``Authorization: Bearer bo_<prefix>_<secret>``.

The key's row is cached (Redis in production) so the hot path costs no
database query; revoking a key deletes the cached row after commit, retried from the
database until the cache takes it (monetization.services.cache_invalidation). With the
cache unreachable the row is read from PostgreSQL.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from monetization.errors import ErrorCode
from monetization.models import ApiKey
from monetization.services.api_keys import api_key_cache_key, api_key_cache_row
from monetization.services.cache_invalidation import cache_trusted

__all__ = ["ApiClient", "ApiKeyAuthentication", "api_key_cache_key", "api_key_cache_row"]


@dataclass(frozen=True)
class ApiClient:
    """The authenticated principal of a client-app request (``request.user``)."""

    key_id: int
    name: str
    scopes: frozenset[str]

    is_authenticated = True
    is_staff = False
    is_superuser = False
    is_active = True

    def has_perm(self, perm: str, obj=None) -> bool:
        return False

    def get_username(self) -> str:
        return f"api-key:{self.name}"


class AuthFailed(exceptions.AuthenticationFailed):
    def __init__(self, detail: str, code: str):
        super().__init__(detail=detail, code=code)


def _load_key(prefix: str) -> dict:
    key = api_key_cache_key(prefix)
    # A miss when the cache is unreachable or may still hold a row a revocation could not delete.
    row = cache.get(key) if cache_trusted() else None
    if row is None:
        obj = ApiKey.objects.filter(prefix=prefix).only("id", "name", "key_hash", "scopes", "revoked_at").first()
        row = api_key_cache_row(obj)
        # add, not set: a row the key services wrote after their commit (a revocation) wins
        # over the one this request read before that commit.
        cache.add(key, row, settings.API_KEY_CACHE_TTL)
    return row


def api_key_credentials(header: str) -> tuple[str, str] | None:
    """``(token, prefix)`` from an ``Authorization: Bearer bo_<prefix>_<secret>`` header.

    None when the header is not a Bearer one (another authentication's turn); AuthFailed
    when it is one but malformed.
    """
    parts = header.split()
    if not parts or parts[0] != ApiKeyAuthentication.keyword:
        return None
    if len(parts) != 2:
        raise AuthFailed("Malformed Authorization header.", ErrorCode.API_KEY_INVALID)
    token = parts[1]
    pieces = token.split("_", 2)
    if len(pieces) != 3 or pieces[0] != "bo":
        raise AuthFailed("Invalid API key.", ErrorCode.API_KEY_INVALID)
    return token, pieces[1]


def api_client_for(row: dict, token: str) -> ApiClient:
    """The principal a cached key row (:func:`api_key_cache_row`) grants to ``token``, or AuthFailed."""
    if row.get("missing") or not hmac.compare_digest(row["hash"], ApiKey.hash_secret(token)):
        raise AuthFailed("Invalid API key.", ErrorCode.API_KEY_INVALID)
    if row["revoked"]:
        raise AuthFailed("This API key has been revoked.", ErrorCode.API_KEY_REVOKED)
    return ApiClient(key_id=row["id"], name=row["name"], scopes=frozenset(row["scopes"]))


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        credentials = api_key_credentials(request.META.get("HTTP_AUTHORIZATION", ""))
        if credentials is None:
            return None
        token, prefix = credentials
        return api_client_for(_load_key(prefix), token), token

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "monetization.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Client app API key: `Bearer bo_<prefix>_<secret>`"}

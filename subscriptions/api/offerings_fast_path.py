"""The WSGI fast path for cache hits of ``GET /api/v1/offerings`` (see subscriptions/api/fast_path.py).

The entitlement fast path's machinery (Django's host, scheme and headers, DRF's negotiation, the
key check, scope permission and throttle, the one Redis round trip), for another cached body:
the offerings body of (platform, country, the customer's arm), read through the generation and
the customer's arm tag (subscriptions/services/offerings.py) inside the same Lua script that reads
the key row and counts the request. Only a query string Django would read the same way is served
here: exactly ``platform``, ``country`` and optionally ``customer``, each once, with plain values;
anything else goes to Django.
"""

from __future__ import annotations

import re

from django.urls import Resolver404, resolve, reverse

from monetization.api.throttling import run_script
from monetization.cache import CACHE_ERRORS
from subscriptions.api.fast_path import EXTERNAL_ID, EntitlementsFastPath, _Unsupported
from subscriptions.api.offerings import OfferingsView
from subscriptions.models import Platform
from subscriptions.selectors import COUNTRY_CODES
from subscriptions.services.offerings import GENERATION_KEY, NO_ARM

_PLAIN = {
    "platform": re.compile("|".join(re.escape(p) for p in Platform.values)),
    "country": re.compile(r"[A-Za-z]{2}"),
    "customer": re.compile(EXTERNAL_ID),
}

# KEYS: the key row, the generation, then the window counters; ARGV: the offerings key prefix,
# the customer ('' for none), "platform:country", then each counter's expiry. Counts only when
# the row, the generation, the customer's arm tag and the body are all cached (as _COUNT_IF_CACHED).
_READ_AND_COUNT = (
    """
local row = redis.call('GET', KEYS[1])
if not row then return {} end
local gen = redis.call('GET', KEYS[2])
if not gen then return {} end
local tag = '"""
    + NO_ARM
    + """'
if ARGV[2] ~= '' then
  tag = redis.call('GET', ARGV[1] .. gen .. ':arm:' .. ARGV[2])
  if not tag then return {} end
end
local body = redis.call('GET', ARGV[1] .. gen .. ':body:' .. ARGV[3] .. ':' .. tag)
if not body then return {} end
local out = {row, body}
for i = 3, #KEYS do
  out[i] = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[i + 1], 'NX')
end
return out
"""
)


class OfferingsFastPath(EntitlementsFastPath):
    """WSGI middleware for offerings hits (backoffice/wsgi.py, inside the entitlement fast path)."""

    view_class = OfferingsView
    name = "Offerings"

    def _route(self):
        path = "/" + reverse("offerings").lstrip("/")
        try:
            match = resolve(path)
        except Resolver404 as exc:
            raise _Unsupported("no URL pattern leads to OfferingsView") from exc
        if getattr(match.func, "view_class", None) is not OfferingsView or match.args or match.kwargs:
            raise _Unsupported(f"{path!r} does not resolve to OfferingsView alone")
        # A fixed path: resolved once here, compared as a string per request.
        return _Pattern(match.func), path

    def _match(self, environ):
        if environ.get("PATH_INFO") != self.path:
            return None
        params = {}
        for part in environ.get("QUERY_STRING", "").split("&"):
            name, eq, value = part.partition("=")
            plain = _PLAIN.get(name)
            if not eq or plain is None or name in params or not plain.fullmatch(value):
                return None  # Django parses it (and answers a 400 where it must)
            params[name] = value
        if "platform" not in params or "country" not in params:
            return None
        country = params["country"].upper()
        if country not in COUNTRY_CODES:
            return None
        # No customer bucket: Django's view names no customer in its URL either.
        return (f"{params['platform']}:{country}", params.get("customer", "")), None

    def _lookup_keys(self, row_key: str, body_key) -> tuple[list[str], list[str]]:
        place, customer = body_key
        make = self.cache.make_and_validate_key
        return [make(row_key), make(GENERATION_KEY)], [make("off:v1:"), customer, place]

    def _run(self, row_key: str, body_key, counters) -> list | None:
        keys, args = self._lookup_keys(row_key, body_key)
        try:
            found = run_script(
                self.cache,
                _READ_AND_COUNT,
                keys + [self.cache.make_and_validate_key(k) for k, _ in counters],
                args + [timeout for _, timeout in counters],
            )
        except CACHE_ERRORS as exc:
            self.cache.failed(exc)
            return None
        if len(found) < 2 + len(counters):
            return None
        return found

    def _read_and_count(self, row_key, body_key, counters):
        if self.cache.is_down:
            return None
        found = self._run(row_key, body_key, counters)
        if found is None:
            return None
        return [self.cache._cache._serializer.loads(found[0]), found[1]], [int(c) for c in found[2:]]

    def _read(self, row_key, body_key):
        found = None if self.cache.is_down else self._run(row_key, body_key, [])
        if found is None:
            return None, None
        return self.cache._cache._serializer.loads(found[0]), found[1]


class _Pattern:
    """What EntitlementsFastPath.__init__ reads of a URL pattern: the view's init kwargs."""

    def __init__(self, callback):
        self.callback = callback

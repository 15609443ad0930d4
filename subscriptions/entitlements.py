"""Entitlement resolution: what a customer may use right now, and why.

A customer's entitlements come from *sources*: subscriptions in an entitling
state and active grants (here), organization seats (verified_orgs), ... Each
app registers its source in :data:`entitlement_sources`, so this module never
imports the apps that extend it.

The result is cached per customer (by external id, the API's lookup key).
Correctness rests on two rules:

1. every service that changes a source calls :func:`entitlements_invalidate` in its
   transaction: the invalidation commits with the change and is applied after commit,
   retried from the database while the cache is unreachable
   (monetization.services.cache_invalidation), so a revocation is never lost to an outage;
2. the cache entry never outlives the earliest expiry it contains, so an
   entitlement that simply runs out is never served stale either.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import CharField, DateTimeField, Expression, F, QuerySet, Subquery, Value
from django.db.models.functions import Cast

from monetization import clock
from monetization.registry import Registry
from monetization.services.cache_invalidation import cache_invalidate, cache_trusted


@dataclass(frozen=True)
class ActiveEntitlement:
    key: str
    source: str  # "subscription", "grant", "organization", ...
    source_id: str
    expires_at: datetime | None

    def as_dict(self) -> dict:
        return {
            "key": self.key,
            "source": self.source,
            "source_id": self.source_id,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


# entitlement_sources.register(name, fn(customer, at) -> querysets) from AppConfig.ready(): ``customer`` is a
# customer's id or an expression giving it (a subquery on the external id); each queryset is shaped by
# :func:`entitlement_rows`, so that resolution is one UNION ALL of every source's rows: one round trip to
# the database (through PgBouncer each round trip passes the pooler too) however many sources there are.
EntitlementSource = Callable[[int | Expression, datetime], Iterable[QuerySet]]
entitlement_sources: Registry[EntitlementSource] = Registry("entitlement source")

ROW = ("entitlement_source", "entitlement_source_id", "entitlement_key", "entitlement_expires_at")
_CUSTOMER_FOUND = "customer"  # the source name of the row that says the external id names a customer


def entitlement_rows(queryset: QuerySet, *, source: str, source_id, key, expires_at) -> QuerySet:
    """``queryset`` as rows of one active entitlement each: ``source`` and expressions for the rest
    (``key`` NULL: no entitlement, the row is dropped)."""
    return (
        queryset.order_by()
        .annotate(  # no model ordering: a sort per branch the union does not keep
            entitlement_source=Value(source, output_field=CharField()),
            entitlement_source_id=Cast(source_id, output_field=CharField()),
            entitlement_key=Cast(key, output_field=CharField()),
            entitlement_expires_at=Cast(expires_at, output_field=DateTimeField()),
        )
        .values_list(*ROW)
    )


def _resolved(querysets: list[QuerySet]) -> list[tuple]:
    first, *rest = querysets
    return list(first.union(*rest, all=True)) if rest else list(first)


def _entitlements(rows: Iterable[tuple]) -> list[ActiveEntitlement]:
    found = {
        ActiveEntitlement(key=key, source=source, source_id=source_id, expires_at=expires_at)
        for source, source_id, key, expires_at in rows
        if key is not None and source != _CUSTOMER_FOUND
    }
    return sorted(found, key=lambda e: (e.key, e.source, e.source_id))


def _source_rows(customer, at: datetime) -> list[QuerySet]:
    return [queryset for source in entitlement_sources for queryset in source(customer, at)]


def resolve_entitlements(customer_id: int, *, at: datetime | None = None) -> list[ActiveEntitlement]:
    """Every active entitlement of a customer, one row per (key, source), sorted by key."""
    return _entitlements(_resolved(_source_rows(customer_id, at or clock.now())))


def resolve_entitlements_by_external_id(external_id: str) -> list[ActiveEntitlement] | None:
    """:func:`resolve_entitlements` of the customer with this external id, or None when there is none, in one
    query (the entitlement endpoint's cache miss): the customer's row and every source's rows."""
    from monetization.models import Customer

    customer = Customer.objects.filter(external_id=external_id)
    found = entitlement_rows(
        customer, source=_CUSTOMER_FOUND, source_id=F("id"), key=Value(None), expires_at=Value(None)
    )
    rows = _resolved([found, *_source_rows(Subquery(customer.order_by().values("id")[:1]), clock.now())])
    if not any(row[0] == _CUSTOMER_FOUND for row in rows):
        return None
    return _entitlements(rows)


def entitlements_given_by(customer_id: int, *, source: str, source_id, at: datetime | None = None) -> dict:
    """What ending one source (a subscription, an organization) takes from a customer, resolved by the
    same sources as the entitlement endpoint: ``ends``, the entitlements only it gives; ``kept``, the
    keys it gives that another source gives too (the customer keeps them)."""
    active = resolve_entitlements(customer_id, at=at)
    mine = [e for e in active if e.source == source and e.source_id == str(source_id)]
    others = {e.key for e in active if not (e.source == source and e.source_id == str(source_id))}
    return {
        "ends": [e.as_dict() for e in mine if e.key not in others],
        "kept": sorted({e.key for e in mine if e.key in others}),
    }


def entitlements_cache_key(external_id: str) -> str:
    return f"ent:v1:{external_id}"


def cached_entitlements_json(external_id: str) -> bytes | None:
    """The cached serialized entitlements of a customer, or None on a miss (or when the cache
    may hold entries a revocation could not yet delete: then the database answers)."""
    if not cache_trusted():
        return None
    return cache.get(entitlements_cache_key(external_id))


def cache_entitlements(external_id: str, entitlements: list[ActiveEntitlement], body: bytes) -> None:
    ttl = settings.ENTITLEMENT_CACHE_TTL
    now = clock.now()
    expiries = [e.expires_at for e in entitlements if e.expires_at is not None]
    if expiries:
        ttl = max(1, min(ttl, int((min(expiries) - now).total_seconds())))
    cache.set(entitlements_cache_key(external_id), body, ttl)


def entitlements_invalidate(external_ids: Iterable[str]) -> None:
    """Forget cached entitlements once the current transaction commits (even across a cache outage)."""
    cache_invalidate(entitlements_cache_key(x) for x in set(external_ids))


def entitlements_body(external_id: str, entitlements: list[ActiveEntitlement]) -> bytes:
    return json.dumps(
        {"customer": external_id, "entitlements": [e.as_dict() for e in entitlements]}, separators=(",", ":")
    ).encode()

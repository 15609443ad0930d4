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
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connections, router
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


def _union(querysets: list[QuerySet]) -> QuerySet:
    first, *rest = querysets
    return first.union(*rest, all=True) if rest else first


def _resolved(querysets: list[QuerySet]) -> list[tuple]:
    return list(_union(querysets))


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

    at = clock.now()
    statement = _compiled()
    if statement is None:
        rows = list(_by_external_id(external_id, at))
    else:
        rows = statement.rows(router.db_for_read(Customer), external_id, at)
    if not any(row[0] == _CUSTOMER_FOUND for row in rows):
        return None
    return _entitlements(rows)


def _by_external_id(external_id: str, at: datetime) -> QuerySet:
    """The customer's row (that the external id names one) and every source's rows, in one query."""
    from monetization.models import Customer

    customer = Customer.objects.filter(external_id=external_id)
    found = entitlement_rows(
        customer, source=_CUSTOMER_FOUND, source_id=F("id"), key=Value(None), expires_at=Value(None)
    )
    return _union([found, *_source_rows(Subquery(customer.order_by().values("id")[:1]), at)])


@dataclass(frozen=True)
class _Statement:
    """:func:`_by_external_id` compiled: its SQL and parameters, with the positions of the parameters that
    are the external id and the time (every other parameter is the same whatever they are)."""

    sql: str
    params: tuple
    external_id_at: tuple[int, ...]
    time_at: tuple[int, ...]

    def rows(self, using: str, external_id: str, at: datetime) -> list[tuple]:
        params = list(self.params)
        for i in self.external_id_at:
            params[i] = external_id
        for i in self.time_at:
            params[i] = at
        with connections[using].cursor() as cursor:
            cursor.execute(self.sql, params)
            return cursor.fetchall()


# Building and compiling the miss's querysets was four fifths of a miss's CPU (about 4 of 5 ms, beside one
# database round trip), though only the external id and the time change from one miss to the next. So the
# query is compiled once per process (again when the registered sources change), and used only when two
# compilations for different ids and times differ in exactly those parameters; otherwise (a source whose
# SQL depends on them some other way) each miss builds its query as before.
_PROBES = (
    ("\x01entitlements-probe-a", datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=UTC)),
    ("\x01entitlements-probe-b", datetime(2002, 3, 4, 5, 6, 7, 8, tzinfo=UTC)),
)
_compiled_by_sources: dict[tuple, _Statement | None] = {}


def _compiled() -> _Statement | None:
    sources = tuple(entitlement_sources.items())
    if sources not in _compiled_by_sources:
        _compiled_by_sources.clear()
        _compiled_by_sources[sources] = _compile()
    return _compiled_by_sources[sources]


def _compile() -> _Statement | None:
    (id_a, at_a), (id_b, at_b) = _PROBES
    compiled = []
    for external_id, at in _PROBES:
        queryset = _by_external_id(external_id, at)
        compiled.append(queryset.query.get_compiler(using=queryset.db).as_sql())
    (sql_a, params_a), (sql_b, params_b) = compiled
    if sql_a != sql_b or len(params_a) != len(params_b):
        return None
    external_id_at, time_at = [], []
    for i, (a, b) in enumerate(zip(params_a, params_b, strict=True)):
        if (a, b) == (id_a, id_b):
            external_id_at.append(i)
        elif (a, b) == (at_a, at_b):
            time_at.append(i)
        elif a != b or a in (id_a, at_a):
            return None  # a parameter made from the id or the time some other way
    if not external_id_at:
        return None
    return _Statement(sql_a, tuple(params_a), tuple(external_id_at), tuple(time_at))


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

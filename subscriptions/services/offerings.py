"""Offerings: which paywall a client shows, rendered once per (platform, country, arm) and cached.

The client asks ``GET /api/v1/offerings?platform=..&country=..&customer=..``. The answer depends on
the catalog, the offerings, and the experiments whose arms carry an offering (``paywall``) or a
price: a customer in such an arm sees that offering, or that price for the arm's plan. So the
cache holds two things, both under a generation token:

- ``off:v1:<gen>:arm:<customer>``: the customer's arm tag (``-`` for none; else the sorted
  ``experiment.arm`` pairs), written after their exposures are recorded, so a hit never needs a
  write (the exposure is recorded once, on the miss);
- ``off:v1:<gen>:body:<platform>:<country>:<tag>``: the rendered JSON body.

Any edit that can change a body (offerings, packages, country overrides, experiments and their
arms, plans, SKUs, prices) forgets the one ``off:v1:gen`` key through ``cache_invalidate`` in its
own transaction, so it is deleted on commit and retried across a Redis outage (see
monetization.services.cache_invalidation). A reader creates the generation before it reads the
database, so a body rendered from a snapshot older than an edit lands under a generation that edit
deleted: nobody reads it again. A hit is one Redis round trip (a Lua script: generation, tag, body).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q

from monetization import clock
from monetization.cache import CACHE_ERRORS
from monetization.errors import ErrorCode, IllegalTransition, InvalidInput, NotFound
from monetization.models import Customer
from monetization.services.audit import audit_record, snapshot
from monetization.services.cache_invalidation import cache_invalidate, cache_trusted
from monetization.services.permissions import require_perm
from subscriptions.models import (
    Experiment,
    ExperimentArm,
    Offering,
    OfferingCountry,
    OfferingPackage,
    Platform,
    Price,
    Sku,
)
from subscriptions.selectors import COUNTRY_CODES, price_in_force
from subscriptions.services.experiments import experiment_expose

GENERATION_KEY = "off:v1:gen"
NO_ARM = "-"
AUDITED_FIELDS = ["key", "name", "is_current", "metadata"]

# One round trip for a hit: the generation, then the customer's arm tag, then the body.
_LOOKUP = """
local gen = redis.call('GET', KEYS[1])
if not gen then return {} end
local tag = ARGV[2]
if tag == '' then
  tag = redis.call('GET', ARGV[1] .. gen .. ':arm:' .. ARGV[3])
  if not tag then return {gen} end
end
local body = redis.call('GET', ARGV[1] .. gen .. ':body:' .. ARGV[4] .. ':' .. tag)
if not body then return {gen, tag} end
return {gen, tag, body}
"""
_scripts: dict[int, object] = {}


# --- reading -------------------------------------------------------------------------------------


def offerings_params(*, platform: str, country: str) -> tuple[str, str]:
    """The platform and upper-case country, or InvalidInput with the catalog's codes."""
    if platform not in Platform.values:
        raise InvalidInput(
            f"Unknown platform '{platform}'. Use one of: {', '.join(Platform.values)}.", code=ErrorCode.UNKNOWN_PLATFORM
        )
    country = (country or "").upper()
    if country not in COUNTRY_CODES:
        raise InvalidInput(
            f"Unknown country '{country}'. Use an ISO 3166-1 alpha-2 code such as US or DE.",
            code=ErrorCode.UNKNOWN_COUNTRY,
        )
    return platform, country


def offerings_body(*, platform: str, country: str, customer_external_id: str = "") -> bytes:
    """The offerings body for this customer (or an anonymous client), from the cache when it can."""
    platform, country = offerings_params(platform=platform, country=country)
    redis = _redis()
    trusted = redis is not None and cache_trusted()
    gen = tag = None
    if trusted:
        found = _lookup(redis, platform, country, customer_external_id)
        if found is None:
            trusted = False  # Redis unreachable: answer from the database, write nothing
        else:
            gen, tag, body = found
            if body is not None:
                return body
            if gen is None:
                gen = _generation_create(redis)
    if tag is None:
        tag = offering_arm_tag(customer_external_id=customer_external_id) if customer_external_id else NO_ARM
    body, ttl = offerings_render(platform=platform, country=country, tag=tag)
    if trusted and gen is not None:
        _store(redis, gen, platform, country, customer_external_id, tag, body, ttl)
    return body


def offering_arm_tag(*, customer_external_id: str) -> str:
    """The customer's arms in the experiments that change offerings or prices, their exposure
    recorded on the first call (a stopped experiment keeps its exposed customers' arms)."""
    if not Customer.objects.filter(external_id=customer_external_id).exists():
        raise NotFound(f"No customer with external id '{customer_external_id}'.")
    keys = (
        Experiment.objects.filter(state__in=[Experiment.State.RUNNING, Experiment.State.STOPPED])
        .filter(Q(arms__paywall__isnull=False) | Q(arms__price__isnull=False))
        .distinct()
        .order_by("key")
        .values_list("key", flat=True)
    )
    pairs = []
    for key in keys:
        exposure = experiment_expose(experiment_key=key, customer_external_id=customer_external_id)
        if exposure.arm is not None:
            pairs.append(f"{key}.{exposure.arm.key}")
    return "+".join(pairs) or NO_ARM


@dataclass(frozen=True)
class _Arms:
    paywall: Offering | None
    prices: dict[int, Price]  # plan id -> the arm's price (for its country and platform)


def _arms_of(tag: str) -> _Arms:
    if tag == NO_ARM:
        return _Arms(None, {})
    pairs = [pair.split(".", 1) for pair in tag.split("+")]
    q = Q()
    for experiment_key, arm_key in pairs:
        q |= Q(experiment__key=experiment_key, key=arm_key)
    arms = list(ExperimentArm.objects.filter(q).select_related("paywall", "price").order_by("experiment__key"))
    paywall = next((a.paywall for a in arms if a.paywall is not None), None)
    prices = {a.price.plan_id: a.price for a in arms if a.price is not None}
    return _Arms(paywall, prices)


def offerings_render(*, platform: str, country: str, tag: str, at: datetime | None = None) -> tuple[bytes, int]:
    """The body for (platform, country, arm tag) and how long it may be cached (the next price change)."""
    at = at or clock.now()
    arms = _arms_of(tag)
    offering = arms.paywall
    if offering is None:
        override = OfferingCountry.objects.select_related("offering").filter(country=country).first()
        offering = override.offering if override else Offering.objects.filter(is_current=True).first()
    packages_out: list[dict] = []
    ttl = settings.OFFERINGS_CACHE_TTL
    if offering is not None:
        packages = list(
            OfferingPackage.objects.filter(offering=offering, plan__is_active=True, plan__product__is_active=True)
            .filter(Q(platform="") | Q(platform=platform))
            .select_related("plan__product")
            .order_by("position", "id")
        )
        plan_ids = {p.plan_id for p in packages}
        on_platform = Sku.objects.filter(plan_id__in=plan_ids, platform=platform, is_active=True).order_by("id")
        skus = {s.plan_id: s for s in on_platform}
        prices: dict[int, list[Price]] = {}
        for price in Price.objects.filter(
            Q(platform="") | Q(platform=platform), plan_id__in=plan_ids, country=country, component=Price.Component.BASE
        ):
            prices.setdefault(price.plan_id, []).append(price)
            # A price that starts or ends later changes the body with no edit: cache no longer than that.
            for moment in (price.valid_from, price.valid_until):
                if moment is not None and moment > at:
                    ttl = min(ttl, max(1, int((moment - at).total_seconds())))
        for package in packages:
            sku = skus.get(package.plan_id)
            arm_price = arms.prices.get(package.plan_id)
            if arm_price is not None and (arm_price.country != country or arm_price.platform not in ("", platform)):
                arm_price = None
            price = arm_price or price_in_force(
                prices.get(package.plan_id, []),
                platform=platform,
                country=country,
                component=Price.Component.BASE,
                at=at,
            )
            if sku is None or price is None:
                continue  # not sold on this platform, or not priced in this country
            plan = package.plan
            packages_out.append(
                {
                    "key": package.key,
                    "product": plan.product.code,
                    "plan": plan.code,
                    "interval": plan.interval,
                    "interval_count": plan.interval_count,
                    "trial_days": plan.trial_days,
                    "store_product_id": sku.store_product_id,
                    "base_plan_id": sku.base_plan_id,
                    "price": {"amount": str(price.amount.amount), "currency": price.amount.currency.code},
                }
            )
    body = {
        "platform": platform,
        "country": country,
        "offering": None
        if offering is None
        else {"key": offering.key, "name": offering.name, "metadata": offering.metadata},
        "arms": [] if tag == NO_ARM else tag.split("+"),
        "packages": packages_out,
    }
    return json.dumps(body, separators=(",", ":")).encode(), ttl


# --- the cache -----------------------------------------------------------------------------------


def _redis():
    """The default cache when it is Redis (the demo's in-process cache: no offerings cache)."""
    return cache if hasattr(cache, "_cache") and hasattr(cache, "is_down") and not cache.is_down else None


def _lookup(redis, platform, country, customer) -> tuple[str | None, str | None, bytes | None] | None:
    try:
        client = redis._cache.get_client(None, write=True)
        script = _scripts.get(id(client))
        if script is None:
            script = _scripts[id(client)] = client.register_script(_LOOKUP)
        found = script(
            keys=[redis.make_and_validate_key(GENERATION_KEY)],
            args=[
                redis.make_and_validate_key("off:v1:"),
                "" if customer else NO_ARM,
                customer,
                f"{platform}:{country}",
            ],
            client=client,
        )
    except CACHE_ERRORS as exc:
        redis.failed(exc)
        return None
    found = [v.decode() if i < 2 else v for i, v in enumerate(found)]
    return [*found, None, None, None][:3]


def _generation_create(redis) -> str | None:
    try:
        client = redis._cache.get_client(None, write=True)
        key = redis.make_and_validate_key(GENERATION_KEY)
        client.set(key, secrets.token_hex(8), nx=True)
        gen = client.get(key)
    except CACHE_ERRORS as exc:
        redis.failed(exc)
        return None
    return gen.decode() if gen is not None else None


def _store(redis, gen, platform, country, customer, tag, body, ttl) -> None:
    base = redis.make_and_validate_key("off:v1:") + gen
    try:
        pipe = redis._cache.get_client(None, write=True).pipeline(transaction=False)
        if customer:
            pipe.set(f"{base}:arm:{customer}", tag, ex=settings.OFFERINGS_CACHE_TTL)
        pipe.set(f"{base}:body:{platform}:{country}:{tag}", body, ex=ttl)
        pipe.execute()
    except CACHE_ERRORS as exc:
        redis.failed(exc)


def offerings_invalidate() -> None:
    """Forget every cached offerings body and arm once the current transaction commits."""
    cache_invalidate([GENERATION_KEY])


# Saving any of these may change a rendered body. A signal, not a call in each service, so an
# admin inline, a demo seed or a shell edit cannot forget it (set-based updates bypass signals:
# call offerings_invalidate() after one).
SHAPES_OFFERINGS = [
    "Offering",
    "OfferingPackage",
    "OfferingCountry",
    "Experiment",
    "ExperimentArm",
    "Product",
    "Plan",
    "Sku",
    "Price",
]


def offerings_changed(sender, **kwargs) -> None:
    if kwargs.get("raw"):
        return  # fixture loading
    offerings_invalidate()


# --- staff edits (the admin saves the form, then calls these) ------------------------------------


def offering_saved(*, actor, offering: Offering, created: bool, before: dict | None = None) -> None:
    """Audit a staff edit of an offering (its packages and country overrides come with it)."""
    require_perm(actor, "subscriptions.add_offering" if created else "subscriptions.change_offering")
    offering.updated_at = clock.now()
    Offering.objects.filter(pk=offering.pk).update(updated_at=offering.updated_at)
    audit_record(
        action="offering.created" if created else "offering.changed",
        obj=offering,
        actor=actor,
        before=before,
        after=offering_snapshot(offering),
    )


def offering_snapshot(offering: Offering) -> dict:
    """The offering's fields with its packages and countries, for the audit trail."""
    return {
        **snapshot(offering, AUDITED_FIELDS),
        "packages": [
            f"{p.position}:{p.key}:{p.plan.code}:{p.platform or 'all'}"
            for p in offering.packages.select_related("plan").order_by("position", "id")
        ],
        "countries": sorted(offering.countries.values_list("country", flat=True)),
    }


def offering_make_current(*, actor, offering_id: int, reason: str = "") -> Offering:
    """Show this offering wherever no country override or experiment arm says otherwise."""
    require_perm(actor, "subscriptions.change_offering")
    with transaction.atomic():
        offering = Offering.objects.select_for_update().filter(pk=offering_id).first()
        if offering is None:
            raise NotFound(f"No offering {offering_id}.")
        if offering.is_current:
            raise IllegalTransition(f"Offering '{offering.key}' is already the current one.")
        previous = Offering.objects.select_for_update().filter(is_current=True).first()
        before = snapshot(offering, AUDITED_FIELDS)
        if previous is not None:
            previous.is_current = False
            previous.save(update_fields=["is_current"])
        offering.is_current = True
        offering.updated_at = clock.now()
        offering.save(update_fields=["is_current", "updated_at"])
        audit_record(
            action="offering.made_current",
            obj=offering,
            actor=actor,
            before={**before, "previous": previous.key if previous else None},
            after=snapshot(offering, AUDITED_FIELDS),
            reason=reason,
        )
    return offering

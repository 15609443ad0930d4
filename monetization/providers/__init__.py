"""Payment providers: one package per platform, each holding everything that platform knows.

Each package (``stripe``, ``app_store``, ``google_play``) offers, besides its adapter
(verification, API calls through the platform's own SDK):

- ``CAPABILITIES``: what the platform lets us do (:class:`~.base.Capabilities`);
- ``relevant(event_type)``: whether an event type can change anything here (the others
  are stored as ignored);
- ``event_snapshot(event)``: the subscription snapshot that is a stored event's whole
  effect, or None (such events are applied together, in bulk);
- ``event_facts(event)``: what a stored event says (:class:`~.base.EventFacts`: a
  subscription snapshot, a payment, a refund, ...), with subscription statuses mapped
  to :class:`~.base.SubscriptionStatus`;
- ``PLATFORM_RULES`` and ``rule_problem(rule)``: its dated billing rules (grace, hold,
  dunning), which ``subscriptions.platform_rules`` composes with settings;
- ``manage_subscription_url(store_product_id, package_name)`` (the stores): where the customer
  manages a subscription only they can cancel.

:func:`monetization.providers.base.get_provider` gives the configured adapter for API calls.
A provider without a package (``internal``: comped subscriptions) can do nothing.
"""

from __future__ import annotations

from types import ModuleType

from django.conf import settings

from . import app_store, google_play, stripe
from .base import NO_CAPABILITIES, Capabilities

PACKAGES: dict[str, ModuleType] = {"stripe": stripe, "app_store": app_store, "google_play": google_play}


def provider_package(name: str) -> ModuleType:
    try:
        return PACKAGES[name]
    except KeyError:
        raise LookupError(f"No provider package for {name!r}.") from None


def provider_capabilities(name: str) -> Capabilities:
    package = PACKAGES.get(name)
    return package.CAPABILITIES if package is not None else NO_CAPABILITIES


# Event sources that are no payment provider (no package, no adapter of their own): whether an event type matters.
EVENT_SOURCES = {stripe.CONNECT: stripe.connect_relevant}


def provider_event_relevant(name: str, event_type: str) -> bool:
    if name in EVENT_SOURCES:
        return EVENT_SOURCES[name](event_type)
    return provider_package(name).relevant(event_type)


def provider_manage_url(name: str, store_product_id: str = "") -> str:
    """The store's own page where the customer manages a subscription of ``name`` ("" for a platform
    without one: web subscriptions are managed through us and Stripe's Billing Portal)."""
    package = PACKAGES.get(name)
    link = getattr(package, "manage_subscription_url", None)
    if link is None:
        return ""
    return link(store_product_id, settings.GOOGLE_PLAY_PACKAGE_NAME)

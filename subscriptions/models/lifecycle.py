"""The terms a subscription's state machine is declared in, so one declaration can run row by row
(the model's transitions) and set-based (the lifecycle sweep writes the same rules in SQL).

- :class:`Terms`: what a subscription's lifecycle depends on besides its state and dates: the
  platform rule in force when it lapsed and the grace its product grants on its own terms. The
  sweep partitions subscriptions by provider, rule version and product kind, so within one
  partition the terms are constants.
- :func:`on_terms`: an FSM condition that depends on the terms only; the sweep decides it once
  per partition instead of per row.
- :class:`Instant`: a point in time computed from the row's own columns (first one set, plus a
  fixed delta): a transition's field effects are Instants, evaluated here on an instance and
  written as ``COALESCE(...) + interval`` by the sweep.
- :class:`Deadline` and :class:`Step`: the moves the clock makes (a period ends, a grace
  period runs out): in which state, from which column, and which transitions to try in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monetization.providers.base import NO_CAPABILITIES, Capabilities
from subscriptions.platform_rules import PlatformRule

# Pseudo-column of an Instant: when the transition takes effect (the deadline that passed, for a
# move the clock makes; the clock itself, for a provider event or a staff action).
EFFECTIVE = "effective"


@dataclass(frozen=True)
class Terms:
    rule: PlatformRule
    product_grace_days: int = 0
    capabilities: Capabilities = NO_CAPABILITIES  # what the provider's platform has (a paused state)

    def grace(self) -> timedelta:
        """Access after a failed renewal: the product's own grace when it has one, else the platform's."""
        return timedelta(days=self.product_grace_days) if self.product_grace_days else self.rule.grace()

    def billing_retry(self) -> timedelta | None:
        """App Store billing retry: a window counted from the lapse, whatever the grace."""
        if self.rule.billing_retry_days is None:
            return None
        return timedelta(days=self.rule.billing_retry_days)

    def hold(self) -> timedelta:
        """Billing retry / account hold / past_due without access, after grace (or after the lapse)."""
        return self.rule.hold()


def grace_configured(terms: Terms) -> bool:
    return terms.grace() > timedelta(0)


def hold_configured(terms: Terms) -> bool:
    retry = terms.billing_retry()
    return (retry is not None and retry > timedelta(0)) or terms.hold() > timedelta(0)


def pause_supported(terms: Terms) -> bool:
    # Google Play and Stripe have a paused state; the App Store has none.
    return terms.capabilities.paused_state


def refund_reversal_supported(terms: Terms) -> bool:
    # The App Store may reverse a refund it made; a subscription it revoked for it then has access again.
    return terms.capabilities.refund_reversal


def on_terms(check: Callable[[Terms], bool]) -> Callable[[Any], bool]:
    """An FSM condition decided by the subscription's terms alone."""

    def condition(instance) -> bool:
        return check(instance.terms())

    condition.terms_check = check
    condition.__name__ = check.__name__
    condition.__qualname__ = check.__name__
    return condition


@dataclass(frozen=True)
class Instant:
    """The first of ``columns`` that is set on the row, plus ``delta``."""

    columns: tuple[str, ...]
    delta: timedelta = timedelta(0)

    def __add__(self, delta: timedelta) -> Instant:
        return Instant(self.columns, self.delta + delta)

    def of(self, row, *, effective: datetime) -> datetime | None:
        for column in self.columns:
            value = effective if column == EFFECTIVE else getattr(row, column)
            if value is not None:
                return value + self.delta
        return None


# A transition's field effects: column -> Instant, given the state it leaves and (lazily) the terms.
Effects = Callable[[str, Callable[[], Terms]], dict[str, Instant]]


@dataclass(frozen=True)
class Step:
    """One transition a deadline may take, if its own conditions hold and ``when`` (on the terms) too."""

    transition: str
    reason: Callable[[Terms | None], str]
    when: Callable[[Terms], bool] | None = None
    tag: str = ""  # names the sweep's move (default: the transition)


@dataclass(frozen=True)
class Deadline:
    """A move the clock makes.

    In state ``source`` (and with ``auto_renew`` when it is set), the move takes effect at the
    instant in column ``due`` plus ``after``; the first of ``steps`` whose conditions hold runs,
    with that instant as its effective time. ``leeway`` is how much longer to wait for a provider
    to say otherwise (a renewal's notification) before moving; it does not shift the effect.
    ``by_terms``: ``after``, ``leeway`` or the choice of step depend on the terms (the sweep then
    has one move per provider, rule version and product kind). ``after`` returning None: there is
    no such deadline under these terms.
    """

    name: str
    source: str
    due: str
    steps: tuple[Step, ...]
    auto_renew: bool | None = None
    by_terms: bool = False
    after: Callable[[Terms | None], timedelta | None] = field(default=lambda terms: timedelta(0))
    leeway: Callable[[Terms | None], timedelta] = field(default=lambda terms: timedelta(0))

    def effective(self, terms: Terms | None) -> Instant | None:
        after = self.after(terms)
        return None if after is None else Instant((self.due,), after)

"""Reconciliation: compare our books with the provider's own and list each drift.

Each provider's reconciler reads the provider's API (Stripe balance transactions,
charges, refunds and disputes; App Store transaction history; Play voided purchases
and subscriptionsv2) and yields a :class:`Drift` for every difference from what we
hold. A drift that a resync can repair says how; :func:`provider_reconcile` repairs
those when asked and reports the rest for a person.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from monetization.registry import Registry


@dataclass(frozen=True)
class Drift:
    """One difference between the provider's books and ours."""

    provider: str
    kind: str  # stable code: missing_payment, missing_refund, missing_dispute, amount_mismatch, state_mismatch
    reference: str  # the provider's id of the object that differs (charge, refund, dispute, transaction)
    detail: str  # what differs, for a person
    ours: str = ""
    theirs: str = ""
    # Set when a resync from the provider can repair this drift; called with no arguments.
    repair: Callable[[], None] | None = field(default=None, compare=False, repr=False)


class Reconciler(Protocol):
    def __call__(self, *, since: datetime) -> Iterable[Drift]: ...


reconcilers: Registry[Reconciler] = Registry("provider reconciler")


@dataclass
class ReconcileResult:
    provider: str
    drifts: list[Drift]
    repaired: int = 0
    repair_failed: int = 0


def provider_reconcile(
    *, provider: str, since: datetime, repair: bool = True, progress: Callable[[Drift], None] | None = None
) -> ReconcileResult:
    result = ReconcileResult(provider=provider, drifts=[])
    for drift in reconcilers.get(provider)(since=since):
        result.drifts.append(drift)
        if repair and drift.repair is not None:
            try:
                drift.repair()
            except Exception:
                result.repair_failed += 1
            else:
                result.repaired += 1
        if progress:
            progress(drift)
    return result

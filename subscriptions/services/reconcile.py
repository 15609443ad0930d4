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
from datetime import datetime, timedelta
from typing import Protocol

from monetization import clock
from monetization.models import AuditEvent
from monetization.registry import Registry
from monetization.services.audit import audit_record

# The audit action every run leaves: its ``after`` holds the figures Finance sees (drifts, left).
RECONCILE_RUN = "reconcile.run"


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

    @property
    def left(self) -> int:
        return len(self.drifts) - self.repaired


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
    audit_record(
        action=RECONCILE_RUN,
        object_type="reconcile.provider",
        object_id=provider,
        actor_kind=AuditEvent.ActorKind.SYSTEM,
        actor_label="reconcile_provider",
        after={
            "since": since.isoformat(),
            "drifts": len(result.drifts),
            "repaired": result.repaired,
            "repair_failed": result.repair_failed,
            "left": result.left,
            "kinds": sorted({d.kind for d in result.drifts}),
        },
    )
    return result


def providers_reconcile_recent(*, days: int = 3) -> dict[str, int]:
    """The nightly run: every registered provider over the last ``days``, repaired; drifts left by provider."""
    since = clock.now() - timedelta(days=days)
    return {name: provider_reconcile(provider=name, since=since).left for name, _ in reconcilers.items()}

"""Payouts: Compliance holds, and the paying run.

The paying run claims payouts in chunks with ``SELECT ... FOR UPDATE SKIP LOCKED`` (so
several workers can share a cycle and never take the same payout), asks the provider to
transfer each with the payout's own idempotency key (``payout:<id>``), then marks them paid
and posts each to the ledger (key ``payout:<id>:paid``) in the same transaction.

Why this pays exactly once even when killed at any point: the provider remembers every key
and answers a repeated key with the first transfer; our side (status + ledger) commits
atomically per chunk or not at all, so a re-run re-asks the provider for the unfinished
chunk, gets the same transfers back, and records them once.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Sum
from django_fsm import can_proceed
from djmoney.money import Money

from monetization import clock
from monetization.bulk import bulk_update_rows
from monetization.errors import ErrorCode, IllegalTransition, InvalidInput, NotFound
from monetization.models import Customer
from monetization.providers.base import PayoutError, PayoutProvider, get_payout_provider
from monetization.services.audit import audit_record, snapshot
from monetization.services.ledger import Account, Leg, Posting, journal_post_many
from monetization.services.permissions import require_perm

from ..models import Payout, PayoutHold, RevenueShareCycle

PAYABLE_STATUSES = (Payout.Status.APPROVED, Payout.Status.PROCESSING)
HOLD_PERM = "creators.manage_holds"  # place and lift holds
RETRY_PERM = "creators.approve_cycle"  # send a failed payout back to the paying run
PAYOUT_FIELDS = ["status", "transfer_id", "failure_reason", "attempts"]
CASH_ACCOUNT = Account.cash("stripe_connect")


def _active_hold():
    return PayoutHold.objects.filter(payout=OuterRef("pk"), lifted_at__isnull=True)


def payable_payouts(cycle_id: int):
    """The payouts the paying run pays: the one query the run claims from and the cycle page counts.

    A payout with an active hold is never paid, whatever its status says.
    """
    return Payout.objects.filter(cycle_id=cycle_id, status__in=PAYABLE_STATUSES).exclude(Exists(_active_hold()))


def held_payouts(cycle_id: int):
    """Payouts Compliance holds: at least one hold not lifted."""
    return Payout.objects.filter(cycle_id=cycle_id).filter(Exists(_active_hold()))


def _by_currency(qs) -> dict[str, dict]:
    return {
        row["currency"]: {"count": row["n"], "amount": row["amount"]}
        for row in qs.order_by().values("currency").annotate(n=Count("id"), amount=Sum("amount"))
    }


def cycle_pay_plan(cycle_id: int) -> dict:
    """What a paying run started now would pay and leave held, per currency (the dry run; writes nothing)."""
    payable = _by_currency(payable_payouts(cycle_id))
    held = _by_currency(held_payouts(cycle_id))
    return {
        "payable": payable,
        "payable_count": sum(v["count"] for v in payable.values()),
        "held": held,
        "held_count": sum(v["count"] for v in held.values()),
    }


def payout_hold_place(*, payout_id: int, kind: str, reason: str, actor=None) -> PayoutHold:
    """Compliance stops a payout (missing tax form, sanctions review, fraud) with a reason."""
    require_perm(actor, HOLD_PERM)
    if kind not in PayoutHold.Kind.values:
        raise InvalidInput(f"Unknown hold kind {kind!r}.")
    if not reason or not reason.strip():
        raise InvalidInput("A reason is required.", code=ErrorCode.REASON_REQUIRED)
    with transaction.atomic():
        payout = Payout.objects.select_for_update().filter(pk=payout_id).select_related("creator").first()
        if payout is None:
            raise NotFound("No such payout.")
        before = snapshot(payout, PAYOUT_FIELDS)
        if payout.status != Payout.Status.HELD:
            if not can_proceed(payout.hold):
                raise IllegalTransition(f"A {payout.status} payout cannot be held.")
            payout.hold()
            payout.save()
        hold = PayoutHold.objects.create(
            payout=payout, kind=kind, reason=reason, placed_by=actor if actor and actor.is_authenticated else None
        )
        audit_record(
            action="payout.hold",
            obj=payout,
            actor=actor,
            customer=Customer(pk=payout.creator.customer_id),
            before=before,
            after={**snapshot(payout, PAYOUT_FIELDS), "hold": kind},
            reason=reason,
        )
        return hold


def payout_hold_lift(*, hold_id: int, reason: str, actor=None) -> Payout:
    """Lift one hold; the payout becomes approved again once no hold is left on it."""
    require_perm(actor, HOLD_PERM)
    if not reason or not reason.strip():
        raise InvalidInput("A reason is required.", code=ErrorCode.REASON_REQUIRED)
    with transaction.atomic():
        hold = PayoutHold.objects.select_for_update().filter(pk=hold_id).first()
        if hold is None:
            raise NotFound("No such hold.")
        payout = Payout.objects.select_for_update().select_related("creator").get(pk=hold.payout_id)
        if hold.lifted_at is not None:
            return payout
        before = snapshot(payout, PAYOUT_FIELDS)
        hold.lifted_at = clock.now()
        hold.lifted_by = actor if actor and actor.is_authenticated else None
        hold.lift_reason = reason
        hold.save()
        if payout.status == Payout.Status.HELD and not payout.holds.filter(lifted_at__isnull=True).exists():
            payout.approve()
            payout.save()
        audit_record(
            action="payout.hold_lift",
            obj=payout,
            actor=actor,
            customer=Customer(pk=payout.creator.customer_id),
            before=before,
            after={**snapshot(payout, PAYOUT_FIELDS), "hold": hold.kind},
            reason=reason,
        )
        return payout


def payout_retry(*, payout_id: int, actor=None) -> Payout:
    """A failed payout goes back to processing; the next paying run transfers it (same key)."""
    require_perm(actor, RETRY_PERM)
    with transaction.atomic():
        payout = Payout.objects.select_for_update().filter(pk=payout_id).first()
        if payout is None:
            raise NotFound("No such payout.")
        if payout.status != Payout.Status.FAILED:
            raise IllegalTransition(f"A {payout.status} payout cannot be retried.")
        before = snapshot(payout, PAYOUT_FIELDS)
        payout.retry()
        payout.save()
        audit_record(
            action="payout.retry", obj=payout, actor=actor, before=before, after=snapshot(payout, PAYOUT_FIELDS)
        )
        return payout


def _save_outcomes(chunk: list[Payout]) -> None:
    """Write the chunk's new statuses in one statement (bulk_update's CASE is quadratic in the chunk)."""
    bulk_update_rows(chunk, ["status", "attempts", "transfer_id", "paid_at", "failure_reason"])


def cycle_pay(
    *,
    cycle_id: int,
    provider: PayoutProvider | None = None,
    chunk_size: int = 500,
    progress=None,
    actor=None,
) -> dict:
    """Pay every approved payout of a cycle. Safe to run concurrently, to kill, and to repeat.

    ``actor``: the staff member who started the run, or the :class:`System` cause.
    """
    provider = provider or get_payout_provider()
    with transaction.atomic():
        cycle = RevenueShareCycle.objects.select_for_update().filter(pk=cycle_id).first()
        if cycle is None:
            raise NotFound("No such cycle.")
        if cycle.state == RevenueShareCycle.State.APPROVED:
            before = snapshot(cycle, ["state"])
            cycle.start_paying()
            cycle.save()
            audit_record(
                action="cycle.start_paying",
                obj=cycle,
                actor=actor,
                before=before,
                after=snapshot(cycle, ["state"]),
            )
        elif cycle.state not in (
            RevenueShareCycle.State.PAYING,
            RevenueShareCycle.State.PAID,
            RevenueShareCycle.State.CLOSED,
        ):
            raise IllegalTransition(f"A {cycle.state} cycle cannot be paid.")
    paid = failed = 0
    while True:
        with transaction.atomic():
            chunk = list(
                payable_payouts(cycle_id)
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("creator")
                .order_by("id")[:chunk_size]
            )
            if not chunk:
                break
            postings = []
            chunk_paid = 0
            for payout in chunk:
                payout.start_processing()
                try:
                    result = provider.transfer(
                        destination=payout.destination,
                        amount=Money(payout.amount, payout.currency),
                        idempotency_key=payout.idempotency_key,
                    )
                except PayoutError as exc:
                    payout.fail(str(exc))
                    failed += 1
                    continue
                if result.amount != Money(payout.amount, payout.currency):
                    payout.fail(f"provider reports {result.amount} for key {payout.idempotency_key}")
                    failed += 1
                    continue
                payout.mark_paid(result.transfer_id)
                chunk_paid += 1
                postings.append(
                    Posting(
                        key=f"payout:{payout.pk}:paid",
                        kind="creator_payout",
                        legs=[
                            Leg(Account.CREATOR_PAYABLE, Money(payout.amount, payout.currency)),
                            Leg(CASH_ACCOUNT, Money(-payout.amount, payout.currency)),
                        ],
                        memo=f"Payout {payout.pk} transfer {result.transfer_id}",
                        customer=Customer(pk=payout.creator.customer_id),
                        source_type="creators.payout",
                        source_id=str(payout.pk),
                    )
                )
            _save_outcomes(chunk)
            journal_post_many(postings)
            RevenueShareCycle.objects.filter(pk=cycle_id).update(pay_processed=F("pay_processed") + chunk_paid)
        paid += chunk_paid
        if progress:
            progress(paid=paid, failed=failed)
    with transaction.atomic():
        cycle = RevenueShareCycle.objects.select_for_update().get(pk=cycle_id)
        remaining = payable_payouts(cycle_id).exists()
        if cycle.state == RevenueShareCycle.State.PAYING and not remaining:
            cycle.finish_paying()
            cycle.save()
            audit_record(
                action="cycle.paid",
                obj=cycle,
                actor=actor,
                after={"paid_now": paid, "failed_now": failed},
            )
    return {"paid": paid, "failed": failed}

"""Payouts: Compliance holds, and the paying run.

The paying run never holds a lock while it talks to the provider. Per chunk it
1. claims: a short transaction takes approved payouts with ``SELECT ... FOR UPDATE SKIP LOCKED``
   (so several runs share a cycle and never take the same payout) and marks them ``sending``
   under its database session's token (``claim_token``), then commits;
2. calls the provider for each, outside any transaction, with the payout's own idempotency key
   (``payout:<id>``);
3. records: a short transaction marks each still-ours payout paid or failed and posts the paid
   ones to the ledger (key ``payout:<id>:paid``).

Exactly once even when killed at any point: a payout left ``sending`` by a run whose session is
gone (the server drops a killed client's session) is claimed again by the next run, which
re-asks the provider with the same key and gets the first transfer back; recording is
conditional on the claim (status ``sending`` and our token) and the ledger key is unique. A
session that is alive keeps its claims: two live runs never send the same payout.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.db.models.expressions import RawSQL
from django_fsm import can_proceed
from djmoney.money import Money

from monetization import clock
from monetization.bulk import bulk_update_rows
from monetization.errors import IllegalTransition, InvalidInput, NotFound
from monetization.models import Customer
from monetization.providers.base import PayoutError, PayoutProvider, get_payout_provider
from monetization.reasons import reason_check
from monetization.services.audit import audit_record, snapshot
from monetization.services.ledger import Account, Leg, Posting, journal_post_many
from monetization.services.permissions import require_perm

from ..models import Payout, PayoutHold, RevenueShareCycle

# Owed and on its way: approved, queued for a retry, or being sent by a paying run.
PAYABLE_STATUSES = (Payout.Status.APPROVED, Payout.Status.PROCESSING, Payout.Status.SENDING)
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
    reason_check(reason, what="A hold")
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
    reason_check(reason, what="A hold")
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


# A session is named by its server process and when it started: a pid alone is reused.
_SESSION_TOKEN_SQL = "pid::text || ':' || extract(epoch FROM backend_start)::text"


def _session_token() -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_SESSION_TOKEN_SQL} FROM pg_stat_activity WHERE pid = pg_backend_pid()")  # noqa: S608
        return cursor.fetchone()[0]


def _claimable(cycle_id: int, token: str):
    """Approved or retried payouts, and those left ``sending`` by a run whose session is gone or by an
    earlier call that failed on this same session (one session is one thread: never a run still going)."""
    live = RawSQL(f"SELECT {_SESSION_TOKEN_SQL} FROM pg_stat_activity WHERE backend_start IS NOT NULL", [])  # noqa: S608, S611
    return payable_payouts(cycle_id).filter(
        Q(status__in=[Payout.Status.APPROVED, Payout.Status.PROCESSING])
        | (Q(status=Payout.Status.SENDING) & (~Q(claim_token__in=live) | Q(claim_token=token)))
    )


def _claim(cycle_id: int, chunk_size: int) -> tuple[str, list[Payout]]:
    with transaction.atomic():
        token = _session_token()
        chunk = list(
            # No creator: sending needs only the payout's own fields (a creator account instance per payout
            # was Python time for nothing).
            _claimable(cycle_id, token).select_for_update(skip_locked=True, of=("self",)).order_by("id")[:chunk_size]
        )
        for payout in chunk:
            payout.claim(token)
        bulk_update_rows(chunk, ["status", "attempts", "claim_token", "claimed_at"])
    return token, chunk


def _send(provider: PayoutProvider, chunk: list[Payout]) -> dict[int, tuple[str, str]]:
    """Ask the provider for each transfer, with no transaction open.

    Returns payout id -> ("paid", transfer id) or ("failed", why).
    """
    outcomes = {}
    for payout in chunk:
        try:
            result = provider.transfer(
                destination=payout.destination,
                amount=Money(payout.amount, payout.currency),
                idempotency_key=payout.idempotency_key,
            )
        except PayoutError as exc:
            outcomes[payout.pk] = ("failed", str(exc))
            continue
        if result.amount != Money(payout.amount, payout.currency):
            outcomes[payout.pk] = ("failed", f"provider reports {result.amount} for key {payout.idempotency_key}")
        else:
            outcomes[payout.pk] = ("paid", result.transfer_id)
    return outcomes


def _record(cycle_id: int, token: str, outcomes: dict[int, tuple[str, str]]) -> tuple[int, int]:
    """Mark what the provider answered, only on payouts still claimed by us; post the paid ones."""
    with transaction.atomic():
        mine = list(
            Payout.objects.select_for_update(of=("self",))
            .filter(pk__in=list(outcomes), status=Payout.Status.SENDING, claim_token=token)
            # The creator's customer id only, for the ledger entry: not a creator account instance per payout.
            .annotate(customer_id=F("creator__customer_id"))
            .order_by("id")
        )
        postings = []
        paid = failed = 0
        for payout in mine:
            outcome, detail = outcomes[payout.pk]
            if outcome == "failed":
                payout.fail(detail)
                failed += 1
                continue
            payout.mark_paid(detail)
            paid += 1
            postings.append(
                Posting(
                    key=payout.paid_entry_key,
                    kind="creator_payout",
                    legs=[
                        Leg(Account.CREATOR_PAYABLE, Money(payout.amount, payout.currency)),
                        Leg(CASH_ACCOUNT, Money(-payout.amount, payout.currency)),
                    ],
                    memo=f"Payout {payout.pk} transfer {detail}",
                    customer=Customer(pk=payout.customer_id),
                    source_type="creators.payout",
                    source_id=str(payout.pk),
                )
            )
        _save_outcomes(mine)
        journal_post_many(postings)
        RevenueShareCycle.objects.filter(pk=cycle_id).update(pay_processed=F("pay_processed") + paid)
    return paid, failed


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
        token, chunk = _claim(cycle_id, chunk_size)
        if not chunk:
            break
        chunk_paid, chunk_failed = _record(cycle_id, token, _send(provider, chunk))
        paid += chunk_paid
        failed += chunk_failed
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

"""Moving what customers own: one purchase to another customer (a transfer), or everything (a merge).

Each app moves its own rows: it registers a mover in :data:`customer_movers`, ``fn(scope, apply)``,
which counts what the scope covers (``apply=False``: the preview) or moves those very rows and
counts what it moved (``apply=True``), so the preview staff confirm and the move are one code path.
The money core moves identities, payments, refunds, disputes and consumption requests of a merge;
subscriptions moves subscriptions (a transfer's one, with its payments and refunds) and grants;
organizations and creators their links.

Money records keep their amounts: a payment or refund changes owner, never value, and journal
entries (append-only) keep the customer they were posted for; the tombstone of a merged-away
customer names the survivor, so those entries still lead to the account that owns the money now.

Four-eyes as for refunds: a request whose payments exceed the refund approval threshold in any
currency (``REFUND_APPROVAL_THRESHOLDS``; a currency not listed always) waits for a second staff
member with the approval permission, never the requester.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum

from monetization.errors import Conflict, ErrorCode, InvalidInput, NotFound, OwnershipErrorCode, PermissionDenied
from monetization.models import ConsumptionRequest, Customer, CustomerMerge, Dispute, Payment, ProviderIdentity, Refund
from monetization.reasons import reason_check
from monetization.registry import Registry
from monetization.services.audit import audit_record, snapshot
from monetization.services.permissions import require_perm
from monetization.services.refunds import refund_threshold

PERM_REQUEST = "monetization.request_customer_merge"
PERM_APPROVE = "monetization.approve_customer_merge"
MERGE_FIELDS = ["kind", "status", "source", "target", "purchase_id", "requested_by", "approved_by"]


@dataclass(frozen=True)
class MoveScope:
    """What moves (everything of ``source``, or one purchase of it) and who moves it (for the audit trail)."""

    source: Customer
    target: Customer
    purchase_id: int | None = None  # a subscription id; None: a merge
    actor: Any = None  # a staff user or a System cause
    actor_kind: str | None = None
    actor_label: str = ""
    reason: str = ""

    @property
    def is_merge(self) -> bool:
        return self.purchase_id is None

    def audit_fields(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "actor_kind": self.actor_kind,
            "actor_label": self.actor_label,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Moved:
    """One kind of row a move covers: how many, their amounts per currency, or why it cannot move."""

    what: str
    count: int
    amounts: dict[str, str] = field(default_factory=dict)
    blocked: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CustomerMover = Callable[[MoveScope, bool], list[Moved]]
# customer_movers.register(name, fn(scope, apply) -> [Moved]) from AppConfig.ready().
customer_movers: Registry[CustomerMover] = Registry("customer mover")


def amounts_by_currency(qs, field_name: str = "amount") -> dict[str, str]:
    """The total of a money field per currency (sums never mix currencies)."""
    rows = qs.order_by().values(f"{field_name}_currency").annotate(total=Sum(field_name))
    return {row[f"{field_name}_currency"]: str(row["total"]) for row in rows}


def ownership_move(scope: MoveScope, *, apply: bool) -> list[Moved]:
    """Every app's part of the move, counted (``apply=False``) or done (``apply=True``)."""
    moved: list[Moved] = []
    for mover in customer_movers:
        moved.extend(mover(scope, apply))
    return moved


def core_move(scope: MoveScope, apply: bool) -> list[Moved]:
    """The money core's rows of a merge; a transfer's payments are moved with their subscription."""
    if not scope.is_merge:
        return []
    source, target = scope.source, scope.target
    identities = ProviderIdentity.objects.filter(customer=source)
    payments = Payment.objects.filter(customer=source)
    refunds = Refund.objects.filter(customer=source)
    disputes = Dispute.objects.filter(customer=source)
    requests = ConsumptionRequest.objects.filter(customer=source)
    moved = [
        Moved("identities", identities.count()),
        Moved("payments", payments.count(), amounts_by_currency(payments)),
        Moved("refunds", refunds.count(), amounts_by_currency(refunds)),
        Moved("disputes", disputes.count()),
        Moved("consumption requests", requests.count()),
    ]
    if apply:
        for qs in (identities, payments, refunds, disputes, requests):
            qs.update(customer=target)
    return moved


customer_movers.register("monetization", core_move)


# --- tombstones -------------------------------------------------------------------


def customer_survivor_id(customer_id: int) -> int:
    """The customer that owns what ``customer_id`` owned: itself, or the survivor of its merges."""
    seen = {customer_id}
    while True:
        target = (
            CustomerMerge.objects.filter(
                source_id=customer_id, kind=CustomerMerge.Kind.MERGE, status=CustomerMerge.Status.COMPLETED
            )
            .values_list("target_id", flat=True)
            .first()
        )
        if target is None or target in seen:
            return customer_id
        seen.add(target)
        customer_id = target


def customer_survivor(customer: Customer) -> Customer:
    survivor_id = customer_survivor_id(customer.pk)
    return customer if survivor_id == customer.pk else Customer.objects.get(pk=survivor_id)


def _refuse_merged(customers: list[Customer]) -> None:
    merged = dict(
        CustomerMerge.objects.filter(
            source__in=customers, kind=CustomerMerge.Kind.MERGE, status=CustomerMerge.Status.COMPLETED
        ).values_list("source_id", "target__external_id")
    )
    for customer in customers:
        if customer.pk in merged:
            raise Conflict(
                f"Customer {customer.external_id} was merged into {merged[customer.pk]}.",
                code=OwnershipErrorCode.CUSTOMER_MERGED,
                extra={"customer": customer.external_id, "survivor": merged[customer.pk]},
            )


def _lock_pair(source: Customer, target: Customer) -> tuple[Customer, Customer]:
    """Both customers locked, in id order (two requests about one pair, either way round, never deadlock)."""
    rows = {c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[source.pk, target.pk]).order_by("pk")}
    return rows[source.pk], rows[target.pk]


# --- preview, request, decisions --------------------------------------------------------------


@dataclass(frozen=True)
class MovePreview:
    moved: list[Moved]
    approval_reason: str  # empty: goes through at once

    @property
    def blocked(self) -> list[str]:
        return [m.blocked for m in self.moved if m.blocked]

    @property
    def needs_approval(self) -> bool:
        return bool(self.approval_reason)

    def as_dict(self) -> dict[str, Any]:
        return {
            "moves": [m.as_dict() for m in self.moved],
            "needs_approval": self.needs_approval,
            "approval_reason": self.approval_reason,
            "blocked": self.blocked,
        }


def _approval_reason(moved: list[Moved]) -> str:
    """Why the move waits for a second staff member: the refund thresholds, applied to the payments moved."""
    for row in moved:
        if row.what != "payments":
            continue
        for currency, total in sorted(row.amounts.items()):
            threshold = refund_threshold(currency)
            if threshold is None:
                return f"no auto-approval threshold for {currency}"
            if Decimal(total) > threshold:
                return f"payments of {total} {currency}, above the {threshold} {currency} threshold"
    return ""


def _scope(source, target, purchase_id, actor, reason) -> MoveScope:
    return MoveScope(source=source, target=target, purchase_id=purchase_id, actor=actor, reason=reason)


def ownership_move_preview(*, source: Customer, target: Customer, purchase_id: int | None = None, actor) -> MovePreview:
    """What a transfer (``purchase_id``) or a merge would move, and whether it would wait for approval."""
    require_perm(actor, PERM_REQUEST)
    _validate(source, target)
    _refuse_merged([source, target])
    moved = ownership_move(_scope(source, target, purchase_id, actor, ""), apply=False)
    return MovePreview(moved=moved, approval_reason=_approval_reason(moved))


def _validate(source: Customer, target: Customer) -> None:
    if source.pk == target.pk:
        raise InvalidInput("A customer cannot be merged into, or transfer to, itself.")


def _require_reason(text: str, what: str) -> None:
    reason_check(text, what=what)


def _audit(merge: CustomerMerge, action: str, *, actor, before=None, reason: str = "", actor_kind=None) -> None:
    """On both customers' timelines."""
    for customer in (merge.source, merge.target):
        audit_record(
            action=action,
            obj=merge,
            actor=actor,
            actor_kind=actor_kind,
            customer=customer,
            before=before,
            after=snapshot(merge, MERGE_FIELDS),
            reason=reason,
        )


def customer_merge_request(
    *, source: Customer, target: Customer, reason: str, requested_by, purchase_id: int | None = None
) -> CustomerMerge:
    """Transfer one purchase (``purchase_id``) or merge ``source`` into ``target``.

    At or below the threshold it is done at once; above, it waits for approval. Refused, with
    nothing written, when either customer was merged away (409 ``customer_merged``), a merge of
    ``source`` is already waiting (409 ``customer_merge_in_progress``) or something cannot move
    (409 ``customer_merge_blocked``).
    """
    require_perm(requested_by, PERM_REQUEST)
    _require_reason(reason, "A transfer or merge")
    _validate(source, target)
    kind = CustomerMerge.Kind.MERGE if purchase_id is None else CustomerMerge.Kind.TRANSFER
    with transaction.atomic():
        source, target = _lock_pair(source, target)
        _refuse_merged([source, target])
        if (
            kind == CustomerMerge.Kind.MERGE
            and CustomerMerge.objects.filter(source=source, kind=kind, status__in=CustomerMerge.OPEN).exists()
        ):
            raise _in_progress(source)
        scope = _scope(source, target, purchase_id, requested_by, reason)
        moved = ownership_move(scope, apply=False)
        preview = MovePreview(moved=moved, approval_reason=_approval_reason(moved))
        _refuse_blocked(preview)
        merge = CustomerMerge(
            kind=kind,
            source=source,
            target=target,
            purchase_id=purchase_id,
            reason=reason,
            preview=[m.as_dict() for m in moved],
            requested_by=requested_by if getattr(requested_by, "is_authenticated", False) else None,
        )
        if preview.needs_approval:
            merge.hold_for_approval()
        try:
            with transaction.atomic():
                merge.save()
        except IntegrityError as exc:
            raise _in_progress(source) from exc
        _audit(merge, f"customer_{kind}.request", actor=requested_by, reason=reason)
        if preview.needs_approval:
            _audit(merge, f"customer_{kind}.hold_for_approval", actor=None, reason=preview.approval_reason)
            return merge
        _complete(merge, scope=scope, by=None)
    return merge


def _in_progress(source: Customer) -> Conflict:
    return Conflict(
        f"A merge of customer {source.external_id} is already waiting for a decision.",
        code=OwnershipErrorCode.CUSTOMER_MERGE_IN_PROGRESS,
    )


def _refuse_blocked(preview: MovePreview) -> None:
    if preview.blocked:
        raise Conflict(
            "This cannot be moved: " + "; ".join(preview.blocked),
            code=OwnershipErrorCode.CUSTOMER_MERGE_BLOCKED,
            extra={"blocked": preview.blocked},
        )


def _complete(merge: CustomerMerge, *, scope: MoveScope, by) -> None:
    """Move the rows (the caller holds both customers' locks) and record what moved."""
    moved = ownership_move(scope, apply=True)
    _refuse_blocked(MovePreview(moved=moved, approval_reason=""))
    before = snapshot(merge, MERGE_FIELDS)
    merge.moved = [m.as_dict() for m in moved]
    merge.complete(by=by)
    merge.save()
    counts = {m.what: m.count for m in moved}
    for customer, role in ((merge.source, "merged_away"), (merge.target, "survivor")):
        audit_record(
            action=f"customer.{merge.kind}",
            obj=merge,
            customer=customer,
            before=before,
            after={
                **snapshot(merge, MERGE_FIELDS),
                "role": role,
                "customer": merge.source.external_id,
                "survivor": merge.target.external_id,
                "moved": counts,
            },
            **scope.audit_fields(),
        )


def _lock_for_decision(merge: CustomerMerge, decider, self_decision_message: str) -> CustomerMerge:
    """Lock a held request for a second staff member's decision; never the requester's."""
    locked = CustomerMerge.objects.select_for_update(of=("self",)).select_related("source", "target").get(pk=merge.pk)
    if locked.requested_by_id is not None and locked.requested_by_id == decider.pk:
        raise PermissionDenied(self_decision_message, code=ErrorCode.FOUR_EYES)
    if locked.status != CustomerMerge.Status.PENDING_APPROVAL:
        raise Conflict(f"This request is {locked.status}, not awaiting approval.", code=ErrorCode.ILLEGAL_TRANSITION)
    return locked


def customer_merge_approve(*, merge: CustomerMerge, approved_by, reason: str) -> CustomerMerge:
    """Four-eyes: a second staff member lets a held transfer or merge go through (moved as it stands now)."""
    require_perm(approved_by, PERM_APPROVE)
    _require_reason(reason, "Approving a transfer or merge")
    with transaction.atomic():
        locked = _lock_for_decision(merge, approved_by, "You cannot approve your own transfer or merge.")
        source, target = _lock_pair(locked.source, locked.target)
        _refuse_merged([source, target])
        locked.decided_reason = reason
        scope = _scope(source, target, locked.purchase_id, approved_by, reason)
        before = snapshot(locked, MERGE_FIELDS)
        _complete(locked, scope=scope, by=approved_by)
        # Recorded once done, so the timeline reads pending_approval -> completed, with the approver.
        _audit(locked, f"customer_{locked.kind}.approve", actor=approved_by, before=before, reason=reason)
    return locked


def customer_merge_reject(*, merge: CustomerMerge, rejected_by, reason: str) -> CustomerMerge:
    require_perm(rejected_by, PERM_APPROVE)
    _require_reason(reason, "Rejecting a transfer or merge")
    with transaction.atomic():
        locked = _lock_for_decision(merge, rejected_by, "You cannot decide on your own transfer or merge.")
        before = snapshot(locked, MERGE_FIELDS)
        locked.reject(by=rejected_by)
        locked.decided_reason = reason
        locked.save()
        _audit(locked, f"customer_{locked.kind}.reject", actor=rejected_by, before=before, reason=reason)
    return locked


def customer_merge_get(merge_id: int) -> CustomerMerge:
    merge = CustomerMerge.objects.select_related("source", "target").filter(pk=merge_id).first()
    if merge is None:
        raise NotFound(f"No transfer or merge {merge_id}.")
    return merge

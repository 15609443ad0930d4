"""Disputes (chargebacks): recorded from the provider's reports, booked to the ledger once, queued for Finance.

A report is the provider's whole dispute as it stands (status, balance transactions), so
recording is convergence, not replay: the dispute is created once per provider id, its
status moves forward along the model's transitions (an older report moves nothing), and
each balance transaction is posted under its own key (``dispute_bt:<provider>:<id>``):

- funds withdrawn: the disputed amount leaves the provider's balance (contra revenue
  ``contra_revenue:disputes``) and the dispute fee is an expense (``expense:dispute_fees``);
- funds reinstated (a won dispute): the amount comes back, and the fee where the provider
  returns it.

What a dispute does to access is the provider package's documented rule; this module
only books the money and keeps the deadline.
"""

from __future__ import annotations

from django.db import transaction
from djmoney.money import Money

from monetization.models import Dispute, Payment
from monetization.money import money_from_minor
from monetization.providers.base import DisputeReport
from monetization.services.audit import audit_record, snapshot
from monetization.services.dispute_hooks import run_dispute_lost_hooks
from monetization.services.ledger import Account, Leg, Posting, journal_post

DISPUTES = "contra_revenue:disputes"
DISPUTE_FEES = "expense:dispute_fees"
DISPUTE_FIELDS = ["status", "amount", "withdrawn", "fees", "evidence_due_by", "reason"]

# How a dispute moves to each status from where it stands.
_PATHS: dict[tuple[str, str], list[str]] = {
    (Dispute.Status.NEEDS_RESPONSE, Dispute.Status.UNDER_REVIEW): ["review"],
    (Dispute.Status.NEEDS_RESPONSE, Dispute.Status.WON): ["win"],
    (Dispute.Status.NEEDS_RESPONSE, Dispute.Status.LOST): ["lose"],
    (Dispute.Status.UNDER_REVIEW, Dispute.Status.WON): ["win"],
    (Dispute.Status.UNDER_REVIEW, Dispute.Status.LOST): ["lose"],
}


def dispute_movement_legs(provider: str, amount: Money, fee: Money) -> list[Leg]:
    """One balance transaction of a dispute: what the provider's balance moved, the fee, the disputed revenue."""
    return [
        Leg(Account.cash(provider), amount - fee),
        Leg(DISPUTE_FEES, fee),
        Leg(DISPUTES, -amount),
    ]


def dispute_record_reported(*, payment: Payment, report: DisputeReport, cause) -> tuple[Dispute, bool]:
    """Record what the provider reports about a dispute on ``payment``; returns (dispute, changed).

    Idempotent: the same report again changes nothing; a report older than the newest
    applied moves no status but still books any balance transaction it lists.
    """
    currency = (report.currency or str(payment.amount.currency)).upper()
    with transaction.atomic():
        dispute, created = Dispute.objects.select_for_update().get_or_create(
            provider=payment.provider,
            provider_dispute_id=report.provider_dispute_id,
            defaults={
                "payment": payment,
                "customer_id": payment.customer_id,
                "amount": money_from_minor(report.amount_minor, currency),
                "withdrawn": Money(0, currency),
                "fees": Money(0, currency),
                "reason": report.reason[:64],
                "evidence_due_by": report.evidence_due_by,
                "opened_at": report.as_of,
            },
        )
        before = None if created else snapshot(dispute, DISPUTE_FIELDS)
        changed = created
        newest = dispute.last_event_at is None or report.as_of >= dispute.last_event_at
        lost_now = False
        if newest:
            for step in _PATHS.get((dispute.status, report.status), []):
                getattr(dispute, step)()
                changed = True
                lost_now = lost_now or dispute.status == Dispute.Status.LOST
            if report.evidence_due_by and report.evidence_due_by != dispute.evidence_due_by:
                dispute.evidence_due_by = report.evidence_due_by
                changed = True
            dispute.last_event_at = report.as_of
        booked = False
        for txn_id, amount_minor, fee_minor in report.movements:
            amount, fee = money_from_minor(amount_minor, currency), money_from_minor(fee_minor, currency)
            _entry, posted = journal_post(
                Posting(
                    key=f"dispute_bt:{payment.provider}:{txn_id}",
                    kind="dispute",
                    legs=dispute_movement_legs(payment.provider, amount, fee),
                    memo=f"Dispute {report.provider_dispute_id} on {payment.provider_reference}",
                    customer=payment.customer,
                    source_type="monetization.dispute",
                    source_id=str(dispute.pk),
                )
            )
            if posted:
                dispute.withdrawn = dispute.withdrawn - amount
                dispute.fees = dispute.fees + fee
                booked = changed = True
        dispute.save()
        if lost_now:
            # Once per dispute (its status moves to lost once): what the payment funded is taken back.
            run_dispute_lost_hooks(
                payment=payment,
                amount=dispute.amount,
                reference=f"dispute:{report.provider_dispute_id}",
                occurred_at=report.as_of,
            )
        if changed:
            audit_record(
                action="dispute.record_from_provider" if created else "dispute.update_from_provider",
                obj=dispute,
                actor_kind=cause.actor_kind,
                actor_label=cause.label,
                customer=payment.customer,
                before=before,
                after={**snapshot(dispute, DISPUTE_FIELDS), "booked": booked},
                reason=cause.reason,
            )
    return dispute, changed


def disputes_open_queue():
    """Finance's queue: open disputes, the nearest evidence deadline first."""
    return (
        Dispute.objects.filter(status__in=Dispute.OPEN)
        .select_related("payment", "customer")
        .order_by("evidence_due_by", "id")
    )

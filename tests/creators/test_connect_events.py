"""Stripe Connect events: account status holds and releases payouts, a reversed transfer is owed again
(and re-sent under a new key once released), a failed bank payout holds without paying twice."""

from decimal import Decimal

import pytest

from creators.models import Payout, PayoutHold, PayoutProfile
from creators.services.connect import connect_event_apply
from creators.services.payouts import cycle_pay, payout_hold_lift
from monetization.demo.providers import FakePayoutProvider
from monetization.models import JournalEntry, JournalLine
from monetization.services.ledger import ledger_report

from .factories import staff
from .test_payouts import approved_cycle

pytestmark = pytest.mark.django_db


def account_updated(account_id, *, payouts_enabled=True, currently_due=()):
    return {
        "id": "evt_1QAccount",
        "object": "event",
        "type": "account.updated",
        "account": account_id,
        "data": {
            "object": {
                "id": account_id,
                "object": "account",
                "charges_enabled": True,
                "payouts_enabled": payouts_enabled,
                "requirements": {
                    "currently_due": list(currently_due),
                    "eventually_due": [],
                    "past_due": [],
                    "disabled_reason": "requirements.past_due" if not payouts_enabled else None,
                },
            }
        },
    }


def transfer_reversed(payout, *, reversed_minor=None):
    amount = int(payout.amount * 100)
    return {
        "id": "evt_1QReversed",
        "object": "event",
        "type": "transfer.reversed",
        "data": {
            "object": {
                "id": payout.transfer_id,
                "object": "transfer",
                "amount": amount,
                "amount_reversed": amount if reversed_minor is None else reversed_minor,
                "currency": payout.currency.lower(),
                "destination": payout.destination,
                "reversed": reversed_minor is None,
                "metadata": {"idempotency_key": payout.idempotency_key},
            }
        },
    }


def payable_balance() -> Decimal:
    lines = JournalLine.objects.filter(account="liability:creator_payable", currency="USD")
    return -sum(lines.values_list("amount", flat=True), Decimal(0))


def test_an_account_that_cannot_be_paid_holds_its_payouts_until_stripe_says_it_can():
    cycle = approved_cycle(2)
    blocked, _other = Payout.objects.filter(cycle=cycle).order_by("id")
    note = connect_event_apply(
        account_updated(blocked.destination, payouts_enabled=False, currently_due=["external_account"])
    )
    assert "1 payout(s) held" in note
    profile = PayoutProfile.objects.get(payout_account_id=blocked.destination)
    assert (profile.payouts_enabled, profile.requirements_due) == (False, ["external_account"])
    connect_event_apply(account_updated(blocked.destination, payouts_enabled=False))  # again: no second hold
    assert PayoutHold.objects.filter(payout=blocked, kind="connect_account", lifted_at__isnull=True).count() == 1
    assert cycle_pay(cycle_id=cycle.pk)["paid"] == 1
    blocked.refresh_from_db()
    assert blocked.status == "held"
    connect_event_apply(account_updated(blocked.destination))
    blocked.refresh_from_db()
    assert blocked.status == "approved"
    assert cycle_pay(cycle_id=cycle.pk)["paid"] == 1


def test_a_reversed_transfer_is_owed_again_held_and_resent_under_a_new_key():
    cycle = approved_cycle(2)
    cycle_pay(cycle_id=cycle.pk)
    payout = Payout.objects.filter(cycle=cycle).order_by("id").first()
    first_key, first_transfer = payout.idempotency_key, payout.transfer_id
    assert payable_balance() == 0
    note = connect_event_apply(transfer_reversed(payout))
    assert "owed again" in note
    payout.refresh_from_db()
    assert (payout.status, payout.sends, payout.transfer_id) == ("held", 1, "")
    assert payable_balance() == payout.amount  # owed to the creator again
    assert JournalEntry.objects.filter(key=f"payout:{payout.pk}:reversed").count() == 1
    assert connect_event_apply(transfer_reversed(Payout(transfer_id=first_transfer, amount=payout.amount))).startswith(
        "no payout"
    )  # a redelivery re-owes nothing more
    assert cycle_pay(cycle_id=cycle.pk)["paid"] == 0  # held: not re-sent by itself
    hold = PayoutHold.objects.get(payout=payout, kind="transfer_reversed")
    payout_hold_lift(hold_id=hold.pk, reason="bank details confirmed", actor=staff("carol", "Compliance"))
    assert cycle_pay(cycle_id=cycle.pk)["paid"] == 1
    payout.refresh_from_db()
    assert payout.status == "paid" and payout.idempotency_key == f"payout:{payout.pk}:1" != first_key
    assert FakePayoutProvider.transfers[payout.idempotency_key].transfer_id == payout.transfer_id != first_transfer
    assert JournalEntry.objects.filter(key=f"payout:{payout.pk}:1:paid").count() == 1
    assert payable_balance() == 0
    assert ledger_report().balanced


def test_a_partial_reversal_holds_for_finance_and_re_owes_nothing():
    cycle = approved_cycle(1)
    cycle_pay(cycle_id=cycle.pk)
    payout = Payout.objects.get(cycle=cycle)
    assert "partial reversal" in connect_event_apply(transfer_reversed(payout, reversed_minor=100))
    payout.refresh_from_db()
    assert payout.status == "paid" and payable_balance() == 0


def test_a_failed_bank_payout_holds_the_creators_payouts_and_pays_nothing_twice():
    cycle = approved_cycle(2)
    target = Payout.objects.filter(cycle=cycle).order_by("id").first()
    entries = JournalEntry.objects.count()
    event = {
        "id": "evt_1QPayoutFailed",
        "object": "event",
        "type": "payout.failed",
        "account": target.destination,
        "data": {
            "object": {
                "id": "po_1QFailed",
                "object": "payout",
                "amount": 1940,
                "currency": "usd",
                "failure_code": "account_closed",
                "status": "failed",
            }
        },
    }
    assert "1 payout(s) held" in connect_event_apply(event)
    target.refresh_from_db()
    assert target.status == "held"
    assert PayoutHold.objects.get(payout=target).kind == "bank_payout_failed"
    assert PayoutProfile.objects.get(payout_account_id=target.destination).payouts_enabled is False
    assert JournalEntry.objects.count() == entries
    connect_event_apply(account_updated(target.destination))  # fixed: released
    target.refresh_from_db()
    assert target.status == "approved"


def test_a_new_cycle_holds_payouts_of_an_account_stripe_says_cannot_be_paid():
    cycle = approved_cycle(1)
    payout = Payout.objects.get(cycle=cycle)
    assert payout.status == "approved"
    PayoutProfile.objects.filter(payout_account_id=payout.destination).update(payouts_enabled=False)
    from creators.services.cycles import _schedule_payouts

    Payout.objects.filter(pk=payout.pk).delete()
    _schedule_payouts(cycle)
    assert Payout.objects.get(cycle=cycle).status == "held"
    assert PayoutHold.objects.get(payout__cycle=cycle).kind == "connect_account"

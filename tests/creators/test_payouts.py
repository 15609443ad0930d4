import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection
from djmoney.money import Money

from creators.models import Payout, PayoutHold, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit
from creators.services.payouts import cycle_pay, payout_hold_lift, payout_hold_place, payout_retry
from monetization.demo.providers import FakePayoutProvider
from monetization.errors import IllegalTransition, InvalidInput, PermissionDenied
from monetization.models import JournalEntry, JournalLine
from monetization.services.ledger import ledger_report

from .factories import engagement, make_creator, post_revenue, staff
from .payout_doubles import FileFakePayoutProvider

SEPT = datetime.date(2026, 9, 1)
AT = datetime.datetime(2026, 9, 10, tzinfo=datetime.UTC)


def approved_cycle(n: int, *, revenue="10000.00") -> RevenueShareCycle:
    creators = [make_creator() for _ in range(n)]
    for i, c in enumerate(creators):
        engagement(c, SEPT, impressions=1000 + i * 37)
    post_revenue(revenue, at=AT)
    alice, bob = staff("alice", "Finance"), staff("bob", "Finance")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    return cycle


def fake_transfers(keys) -> dict:
    """What the payout double sent, by idempotency key: (transfer id, destination, amount in cents)."""
    return {
        key: (t.transfer_id, t.destination, int(t.amount.amount * 100))
        for key, t in FakePayoutProvider.transfers.items()
        if key in set(keys)
    }


def assert_paid_exactly_once(cycle, transfers: dict | None = None):
    """Every payout paid once: one provider transfer per key, same amount and destination; one ledger entry each."""
    payouts = list(Payout.objects.filter(cycle=cycle))
    assert payouts and all(p.status == "paid" for p in payouts)
    keys = [p.idempotency_key for p in payouts]
    transfers = fake_transfers(keys) if transfers is None else {k: v for k, v in transfers.items() if k in keys}
    assert len(transfers) == len(payouts)
    for p in payouts:
        assert transfers[p.idempotency_key] == (p.transfer_id, p.destination, int(p.amount * 100))
    ledger_keys = [f"payout:{p.pk}:paid" for p in payouts]
    assert JournalEntry.objects.filter(key__in=ledger_keys).count() == len(payouts)
    cash = JournalLine.objects.filter(entry__key__in=ledger_keys, account="cash:stripe_connect")
    assert cash.count() == len(payouts)
    assert -sum(cash.values_list("amount", flat=True)) == sum(p.amount for p in payouts)
    assert ledger_report().balanced


@pytest.mark.django_db
def test_hold_place_and_lift_by_compliance_with_reasons():
    cycle = approved_cycle(2)
    compliance, finance = staff("carol", "Compliance"), staff("fin", "Finance")
    p1, p2 = Payout.objects.filter(cycle=cycle).order_by("id")
    with pytest.raises(PermissionDenied):
        payout_hold_place(payout_id=p1.pk, kind="fraud", reason="x", actor=finance)
    with pytest.raises(InvalidInput):
        payout_hold_place(payout_id=p1.pk, kind="fraud", reason="", actor=compliance)
    with pytest.raises(InvalidInput):
        payout_hold_place(payout_id=p1.pk, kind="vibes", reason="x", actor=compliance)
    h1 = payout_hold_place(payout_id=p1.pk, kind="fraud", reason="bot traffic", actor=compliance)
    h2 = payout_hold_place(payout_id=p1.pk, kind="sanctions_review", reason="name match", actor=compliance)
    cycle_pay(cycle_id=cycle.pk)
    p1.refresh_from_db()
    p2.refresh_from_db()
    assert (p1.status, p2.status) == ("held", "paid")
    payout_hold_lift(hold_id=h1.pk, reason="traffic verified", actor=compliance)
    p1.refresh_from_db()
    assert p1.status == "held"  # another hold is still active
    payout_hold_lift(hold_id=h2.pk, reason="false positive", actor=compliance)
    p1.refresh_from_db()
    assert p1.status == "approved"
    h1.refresh_from_db()
    assert (h1.lifted_by, h1.lift_reason) == (compliance, "traffic verified")
    cycle_pay(cycle_id=cycle.pk)  # a later run pays what Compliance released
    assert_paid_exactly_once(cycle)
    with pytest.raises(IllegalTransition):
        payout_hold_place(payout_id=p2.pk, kind="fraud", reason="too late", actor=compliance)
    assert PayoutHold.objects.filter(payout=p1).count() == 2


@pytest.mark.django_db
def test_failed_transfer_is_marked_and_retried_with_the_same_key():
    cycle = approved_cycle(2)
    p1 = Payout.objects.filter(cycle=cycle).order_by("id").first()
    FakePayoutProvider.fail_destinations = {p1.destination}
    try:
        result = cycle_pay(cycle_id=cycle.pk)
    finally:
        FakePayoutProvider.fail_destinations = set()
    assert result == {"paid": 1, "failed": 1}
    p1.refresh_from_db()
    assert p1.status == "failed" and "rejected" in p1.failure_reason
    assert not JournalEntry.objects.filter(key=f"payout:{p1.pk}:paid").exists()
    payout_retry(payout_id=p1.pk, actor=staff("fin", "Finance"))
    cycle_pay(cycle_id=cycle.pk)
    assert_paid_exactly_once(cycle)
    cycle.refresh_from_db()
    assert cycle.state == "paid" and cycle.pay_processed == 2


@pytest.mark.django_db
def test_repeated_run_and_provider_replay_never_pay_twice():
    cycle = approved_cycle(5)
    cycle_pay(cycle_id=cycle.pk, chunk_size=2)
    cycle_pay(cycle_id=cycle.pk, chunk_size=2)
    assert_paid_exactly_once(cycle)
    p = Payout.objects.filter(cycle=cycle).first()
    provider = FakePayoutProvider()
    sent = len(FakePayoutProvider.transfers)
    again = provider.transfer(
        destination=p.destination, amount=Money(p.amount, "USD"), idempotency_key=p.idempotency_key
    )
    assert again.replayed and again.transfer_id == p.transfer_id
    assert len(FakePayoutProvider.transfers) == sent  # the key was known: nothing sent twice


@pytest.mark.django_db(transaction=True)
def test_concurrent_paying_runs_split_the_work_and_pay_each_once():
    cycle = approved_cycle(40)
    errors = []

    def worker():
        try:
            cycle_pay(cycle_id=cycle.pk, chunk_size=3)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert_paid_exactly_once(cycle)
    cycle.refresh_from_db()
    assert cycle.state == "paid" and cycle.pay_processed == 40
    assert sum(Payout.objects.filter(cycle=cycle).values_list("attempts", flat=True)) == 40
    assert Decimal(sum(Payout.objects.filter(cycle=cycle).values_list("amount", flat=True))) > 0


def test_file_fake_remembers_keys_across_instances(tmp_path):
    path = str(tmp_path / "t.jsonl")
    a, b = FileFakePayoutProvider(path), FileFakePayoutProvider(path)
    first = a.transfer(destination="acct_1", amount=Money("12.34", "USD"), idempotency_key="payout:1")
    again = b.transfer(destination="acct_1", amount=Money("12.34", "USD"), idempotency_key="payout:1")
    other = b.transfer(destination="acct_2", amount=Money("1.00", "USD"), idempotency_key="payout:2")
    assert again.replayed and again.transfer_id == first.transfer_id and not first.replayed
    assert a.transfer(destination="x", amount=Money("1.00", "USD"), idempotency_key="payout:2").transfer_id == (
        other.transfer_id
    )
    with open(path, "ab") as f:  # a torn line from a killed writer is ignored
        f.write(b'{"key": "payout:3", "transf')
    assert set(FileFakePayoutProvider(path).records()) == {"payout:1", "payout:2"}
    a.close()
    b.close()

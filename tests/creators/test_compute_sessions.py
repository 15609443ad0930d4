"""A cycle's chunks written from several database sessions at once (outside any transaction of the caller's)."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection

from creators.models import CreatorEarning, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit, selectors_summary
from monetization.models import AuditEvent, JournalEntry
from monetization.services.ledger import ledger_report

from .factories import engagement, make_creator, post_revenue, staff

pytestmark = pytest.mark.django_db(transaction=True)
SEPT, OCT = datetime.date(2026, 9, 1), datetime.date(2026, 10, 1)


def at(day: datetime.date) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, 12, tzinfo=datetime.UTC)


def earnings(cycle) -> dict:
    return {
        (e.creator_id, e.currency): (e.score, e.pool_amount, e.carried_in, e.total, e.payable, e.carried_out)
        for e in CreatorEarning.objects.filter(cycle=cycle)
    }


def planned(plan) -> dict:
    def amount(units: int, currency: str) -> Decimal:
        return Decimal(units).scaleb(-2 if currency != "JPY" else 0)

    return {
        (ln.creator_id, ln.currency): (
            ln.score,
            *(
                amount(v, ln.currency)
                for v in (ln.pool_minor, ln.carried_in_minor, ln.total_minor, ln.payable_minor, ln.carried_out_minor)
            ),
        )
        for ln in plan.lines
    }


def stages() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname LIKE 'creators_cycle_stage%%'")
        return [r[0] for r in cursor.fetchall()]


def test_chunks_written_by_two_sessions_are_the_plan_line_for_line_with_carry_ins():
    alice, bob = staff("alice", "Finance"), staff("bob", "Finance")
    creators = [make_creator() for _ in range(9)]
    for i, c in enumerate(creators):
        engagement(c, SEPT, impressions=37 * i + 1, replies=i, likes=3 * i, reposts=i % 2)
    post_revenue("123.45", at=at(SEPT))
    post_revenue("55.55", at=at(SEPT), currency="EUR")
    post_revenue("700", at=at(SEPT), currency="JPY")
    sept = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=sept.pk, actor=alice, chunk_size=2, sessions=2)
    cycle_submit(cycle_id=sept.pk, actor=alice)
    cycle_approve(cycle_id=sept.pk, actor=bob, reason="figures reviewed")
    for i, c in enumerate(creators[:5]):
        engagement(c, OCT, impressions=11 * i + 5, replies=2)
    post_revenue("77.77", at=at(OCT))
    post_revenue("3.33", at=at(OCT), currency="EUR")
    octo = RevenueShareCycle.objects.create(period=OCT)
    plan = cycle_compute(cycle_id=octo.pk, actor=alice, dry_run=True)
    cycle_compute(cycle_id=octo.pk, actor=alice, chunk_size=2, sessions=2)

    written = earnings(octo)
    assert written == planned(plan)
    assert any(v[2] > 0 for v in written.values())  # carry-ins were exercised
    octo.refresh_from_db()
    n = len({cid for cid, _ in written})
    assert (octo.state, octo.compute_processed, octo.compute_total) == ("computed", n, n)
    # An entry per chunk (two creators in id order) and currency with pool parts, each balanced; no stage left.
    order = sorted({cid for cid, _ in written})
    with_parts = {
        f"{order.index(cid) // 2}" + ("" if cur == "USD" else f":{cur}")
        for (cid, cur), (_, pool, *_) in written.items()
        if pool
    }
    entries = JournalEntry.objects.filter(key__startswith=f"cycle:{octo.pk}:run:1:earnings:")
    assert {e.key.split(":", 5)[5] for e in entries} == with_parts
    assert ledger_report().balanced
    assert AuditEvent.objects.filter(action="cycle.computed", object_id=str(octo.pk)).get().after == (
        selectors_summary(octo)
    )
    assert stages() == []


def test_a_resumed_run_in_two_sessions_writes_only_the_missing_chunks():
    alice = staff("alice", "Finance")
    creators = [make_creator() for _ in range(7)]
    for i, c in enumerate(creators):
        engagement(c, SEPT, impressions=13 * i + 2, likes=i)
    post_revenue("101.01", at=at(SEPT))
    post_revenue("55.55", at=at(SEPT), currency="EUR")
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice, chunk_size=2, sessions=2)
    whole = earnings(cycle)
    entries = set(JournalEntry.objects.values_list("key", flat=True))
    # A run cut short after its first chunk: the resumed run writes the rest, and posts nothing twice.
    CreatorEarning.objects.filter(cycle=cycle, creator_id__gt=creators[1].pk).delete()
    RevenueShareCycle.objects.filter(pk=cycle.pk).update(state="computing")
    cycle_compute(cycle_id=cycle.pk, actor=alice, chunk_size=2, sessions=2)
    assert earnings(cycle) == whole
    assert set(JournalEntry.objects.values_list("key", flat=True)) == entries
    cycle.refresh_from_db()
    assert (cycle.state, cycle.compute_processed, cycle.compute_total) == ("computed", 7, 7)
    assert AuditEvent.objects.filter(action="cycle.computed", object_id=str(cycle.pk)).latest("id").after == (
        selectors_summary(cycle)
    )

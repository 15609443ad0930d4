"""The paying run holds no row lock while the provider is asked (claim, call, record), and a payout
left ``sending`` is taken over only when the session that claimed it is gone."""

import threading
import time

import pytest
from django.db import OperationalError, connection, transaction
from djmoney.money import Money

from creators.models import Payout, RevenueShareCycle
from creators.services.payouts import _claim, cycle_pay
from monetization.demo.providers import FakePayoutProvider

from .test_payouts import approved_cycle, assert_paid_exactly_once


def in_other_session(fn):
    """Run ``fn`` on a thread of its own, so on a database session of its own; return what it returned or raised."""
    out = {}

    def run():
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc
        finally:
            connection.close()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def wait_session_gone(pid: int) -> None:
    """The server ends a closed session asynchronously: wait (bounded) until it has."""
    for _ in range(500):
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.01)
    raise AssertionError(f"session {pid} never ended")


class LockProbe(FakePayoutProvider):
    """Transfers like the double; during each, another session tries to lock the payout and the cycle (NOWAIT)."""

    def __init__(self, cycle_id):
        self.cycle_id = cycle_id
        self.probes = []

    def transfer(self, *, destination, amount, idempotency_key):
        payout_id = int(idempotency_key.split(":")[1])

        def probe():
            try:
                with transaction.atomic():
                    list(Payout.objects.select_for_update(nowait=True).filter(cycle_id=self.cycle_id))
                    list(RevenueShareCycle.objects.select_for_update(nowait=True).filter(pk=self.cycle_id))
                return "free"
            except OperationalError:
                return "locked"

        self.probes.append((payout_id, in_other_session(probe)))
        return super().transfer(destination=destination, amount=amount, idempotency_key=idempotency_key)


@pytest.mark.django_db(transaction=True)
def test_no_row_lock_is_held_while_the_provider_is_called():
    cycle = approved_cycle(6)
    provider = LockProbe(cycle.pk)
    result = cycle_pay(cycle_id=cycle.pk, provider=provider, chunk_size=4)
    assert result == {"paid": 6, "failed": 0}
    assert len(provider.probes) == 6
    assert {state for _, state in provider.probes} == {"free"}
    assert_paid_exactly_once(cycle)


@pytest.mark.django_db(transaction=True)
def test_a_live_claim_is_left_alone_and_a_dead_one_is_taken_over_and_paid_once():
    cycle = approved_cycle(5)
    claimed = threading.Event()
    release = threading.Event()
    taken = {}

    def other_run():
        # Another run claims two payouts and sends one, then hangs (alive) until released, then dies
        # (its session closes) without recording anything.
        token, chunk = _claim(cycle.pk, 2)
        taken["ids"], taken["pid"] = [p.pk for p in chunk], int(token.split(":")[0])
        p = chunk[0]
        FakePayoutProvider().transfer(
            destination=p.destination, amount=Money(p.amount, p.currency), idempotency_key=p.idempotency_key
        )
        claimed.set()
        release.wait(30)

    t = threading.Thread(target=lambda: (other_run(), connection.close()))
    t.start()
    assert claimed.wait(30)
    try:
        first = cycle_pay(cycle_id=cycle.pk, provider=FakePayoutProvider(), chunk_size=2)
        assert first["paid"] == 3
        assert set(Payout.objects.filter(cycle=cycle, status="sending").values_list("id", flat=True)) == set(
            taken["ids"]
        )
        cycle.refresh_from_db()
        assert cycle.state == "paying"  # two payouts are still on their way
    finally:
        release.set()
        t.join()
    wait_session_gone(taken["pid"])
    again = cycle_pay(cycle_id=cycle.pk, provider=FakePayoutProvider(), chunk_size=2)
    assert again["paid"] == 2
    assert_paid_exactly_once(cycle)  # the one sent before the claimant died was not sent again
    sent_twice = Payout.objects.get(pk=taken["ids"][0])
    assert sent_twice.attempts == 2
    cycle.refresh_from_db()
    assert cycle.state == "paid"

"""Finance's daily snapshots: the rebuild command, the beat refresh of days late events touched, the
staff metrics API, and the invariants of the rows whatever the history (definitions:
subscriptions/selectors_finance.py)."""

import datetime
import io
import threading
from datetime import UTC
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization import clock
from monetization.models import Customer, FinanceDirtyDay, Payment, RevenueDay
from monetization.services.finance_snapshots import (
    finance_days_touch,
    finance_dirty_days_forget,
    finance_dirty_days_read,
    midnight,
)
from monetization.services.refunds import refund_record_from_provider
from subscriptions.models import FinanceSegmentChange, MetricsDay, Subscription, SubscriptionPayment
from subscriptions.selectors_finance import mrr_series
from subscriptions.services.finance_snapshots import finance_snapshots_refresh, finance_snapshots_refresh_recent
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import subscription_payment_record
from tests.celery_worker import wait_for
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401 (fixture)
from tests.subscriptions.factories import PlanFactory, SubscriptionFactory

ONE_DAY = datetime.timedelta(days=1)
FIGURES = ("mrr_start", "new", "reactivation", "expansion", "contraction", "churn", "mrr")


def rebuild(start: datetime.date, end: datetime.date) -> str:
    out = io.StringIO()
    call_command("rebuild_finance_snapshots", start=start.isoformat(), end=end.isoformat(), stdout=out)
    return out.getvalue()


def pay(sub, amount: str, at: datetime.datetime, ref: str, currency: str = "USD") -> Payment:
    payment, _ = subscription_payment_record(
        subscription=sub,
        customer=sub.customer,
        provider=sub.provider,
        provider_reference=ref,
        amount=Money(amount, currency),
        occurred_at=at,
    )
    return payment


@pytest.mark.django_db
def test_rebuild_command_shows_its_progress_a_month_at_a_time():
    sub = SubscriptionFactory(plan=PlanFactory(code="snap-monthly", interval="month"))
    pay(sub, "10.00", datetime.datetime(2026, 1, 10, 12, tzinfo=UTC), "in_snap_1")
    with clock.frozen(datetime.datetime(2026, 4, 1, tzinfo=UTC)):
        out = rebuild(datetime.date(2026, 1, 1), datetime.date(2026, 3, 31))
    lines = [line for line in out.splitlines() if line.strip().startswith("[")]
    assert len(lines) == 3 and lines[-1].strip().startswith("[" + "#" * 30 + "] 90/90 days")
    assert "Rebuilt 90 days" in out
    active = {p.day: p.active for p in mrr_series(start=datetime.date(2026, 1, 1), end=datetime.date(2026, 3, 31))}
    assert active[datetime.date(2026, 1, 9)] == 0 and active[datetime.date(2026, 1, 10)] == 1
    assert active[datetime.date(2026, 2, 9)] == 1 and active[datetime.date(2026, 2, 10)] == 0


@pytest.mark.django_db
def test_rebuild_command_refuses_a_reversed_range():
    with pytest.raises(Exception, match="after"):
        rebuild(datetime.date(2026, 3, 1), datetime.date(2026, 2, 1))


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
@pytest.mark.worker_env(FINANCE_SNAPSHOT_INTERVAL="1")
def test_a_late_refund_marks_its_days_and_the_beat_refresh_corrects_them(celery_worker_factory):
    """A refund in full today takes back the period a payment bought 20 days ago: the beat refresh
    (today, yesterday and the marked days) corrects every day of that period, not just the last two."""
    today = clock.now().date()
    sub = SubscriptionFactory(plan=PlanFactory(code="snap-late", interval="month"))
    paid_at = datetime.datetime.combine(today - datetime.timedelta(days=20), datetime.time(12), tzinfo=UTC)
    payment = pay(sub, "10.00", paid_at, "in_snap_late")
    rebuild(today - datetime.timedelta(days=25), today)
    window = {"start": today - datetime.timedelta(days=19), "end": today}
    assert {p.active for p in mrr_series(**window)} == {1}
    FinanceDirtyDay.objects.all().delete()  # what the payment marked, the rebuild covered

    refund_record_from_provider(
        payment=payment,
        amount=Money("10.00", "USD"),
        provider_refund_id="re_snap_late",
        cause=Cause.provider_event("stripe", "evt_snap_late"),
    )
    assert list(FinanceDirtyDay.objects.values_list("day", flat=True)) == [paid_at.date()]

    celery_worker_factory().start()
    wait_for(lambda: not FinanceDirtyDay.objects.exists(), timeout=60)
    assert {p.active for p in mrr_series(**window)} == {0}
    assert RevenueDay.objects.get(day=today, provider="stripe", currency="USD").refunds == Decimal("10.00")


@pytest.mark.django_db
def test_a_payment_recorded_today_marks_no_day():
    sub = SubscriptionFactory(plan=PlanFactory(code="snap-today", interval="month"))
    pay(sub, "10.00", clock.now(), "in_snap_today")
    assert not FinanceDirtyDay.objects.exists()


@pytest.mark.django_db
def test_refresh_recent_covers_today_yesterday_and_the_reach_of_a_marked_day():
    PlanFactory(code="snap-reach", interval="month")  # the longest period in the catalog
    now = datetime.datetime(2026, 6, 30, 9, tzinfo=UTC)
    FinanceDirtyDay.objects.create(day=datetime.date(2026, 3, 1), marked_at=now)
    FinanceDirtyDay.objects.create(day=datetime.date(2026, 6, 1), marked_at=now)
    result = finance_snapshots_refresh_recent(now=now)
    # A month's period reaches at most 32 days past its day; the second mark runs into today.
    assert result.ranges == [
        (datetime.date(2026, 3, 1), datetime.date(2026, 4, 2)),
        (datetime.date(2026, 6, 1), datetime.date(2026, 6, 30)),
    ]
    assert not FinanceDirtyDay.objects.exists()


def test_staff_metrics_api(db, client, make_staff):
    sub = SubscriptionFactory(plan=PlanFactory(code="snap-api", interval="month"), customer=CustomerFactory())
    pay(sub, "10.00", datetime.datetime(2026, 3, 10, 12, tzinfo=UTC), "in_snap_api")
    with clock.frozen(datetime.datetime(2026, 4, 1, tzinfo=UTC)):
        rebuild(datetime.date(2026, 3, 1), datetime.date(2026, 3, 31))
    client.force_login(make_staff("Finance"))
    query = {"start": "2026-03-01", "end": "2026-03-31"}
    mrr = client.get("/api/v1/staff/metrics/mrr", {**query, "segment": "plan"})
    assert mrr.status_code == 200
    last = mrr.json()["days"][-1]
    assert (last["active"], Decimal(last["mrr"]), Decimal(last["arr"])) == (1, Decimal(10), Decimal(120))
    assert last["by_segment"] == {"snap-api": {"active": 1, "mrr": "10.00"}}
    movement = client.get("/api/v1/staff/metrics/movement", query).json()["rows"]
    assert [(m["day"], Decimal(m["new"])) for m in movement if Decimal(m["new"])] == [("2026-03-10", Decimal(10))]
    summary = client.get("/api/v1/staff/metrics/summary", query).json()
    assert summary["revenue"][0]["gross"] == "10.00" and summary["churn"]["churned"] == 0
    assert [c["month"] for c in summary["cohorts"]] == ["2026-03-01"]

    bad = client.get("/api/v1/staff/metrics/mrr", {"start": "2026-03-31", "end": "2026-03-01"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_input"
    assert client.get("/api/v1/staff/metrics/mrr", {"segment": "colour"}).json()["code"] == "invalid_input"
    client.force_login(make_staff("Support"))
    denied = client.get("/api/v1/staff/metrics/mrr", query)
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"


@pytest.mark.django_db
def test_a_late_event_is_carried_into_every_day_after_it():
    """Each day is carried forward from the day before's state: a refund in full of a payment 20 days
    back and a payment recorded 10 days late change every day after them. The beat refresh of the days
    they marked carries all of those days again, up to today: the snapshots equal a rebuild's."""
    plan = PlanFactory(code="snap-carry", interval="month")
    today = datetime.date(2026, 3, 31)
    now = datetime.datetime.combine(today, datetime.time(12), tzinfo=UTC)
    subs = [SubscriptionFactory(plan=plan, customer=CustomerFactory()) for _ in range(3)]
    at = lambda days_ago: now - datetime.timedelta(days=days_ago)  # noqa: E731
    with clock.frozen(now):
        refunded = pay(subs[0], "10.00", at(20), "in_snap_carry_0")
        pay(subs[1], "8.00", at(45), "in_snap_carry_1")
        pay(subs[1], "12.00", at(15), "in_snap_carry_2")  # back after a lapse of two days
        rebuild(today - datetime.timedelta(days=60), today)
        FinanceDirtyDay.objects.all().delete()  # what the payments marked, the rebuild covered
        before = _snapshot()
        refund_record_from_provider(
            payment=refunded,
            amount=Money("10.00", "USD"),
            provider_refund_id="re_snap_carry",
            cause=Cause.provider_event("stripe", "evt_snap_carry"),
        )
        pay(subs[2], "5.00", at(10), "in_snap_carry_3")  # recorded late
        assert sorted(FinanceDirtyDay.objects.values_list("day", flat=True)) == [at(20).date(), at(10).date()]
        finance_snapshots_refresh_recent(now=now)
        carried = _snapshot()
        assert carried != before
        active = {p.day: p.active for p in mrr_series(start=today - datetime.timedelta(days=30), end=today)}
        assert active[at(15).date()] == 1 and active[at(5).date()] == 2  # b's upgrade; c's late payment
        rebuild(today - datetime.timedelta(days=60), today)
    assert _snapshot() == carried


@pytest.mark.django_db
def test_a_change_of_plan_or_country_moves_the_subscription_to_its_new_segment_that_day():
    """The carry keeps a subscription in the segment its state holds and reads its subscription and
    customer again only on a day what segments it changed. Triggers record each such change however it
    is made (here set-based, without ``updated_at``), so it moves that day, with no payment."""
    monthly, other = PlanFactory(code="seg-monthly", interval="month"), PlanFactory(code="seg-other", interval="month")
    today = clock.now().date()
    sub = SubscriptionFactory(plan=monthly, customer=CustomerFactory(country="US"))
    pay(sub, "10.00", midnight(today - datetime.timedelta(days=12)) + datetime.timedelta(hours=12), "in_seg_1")
    finance_snapshots_refresh(start=today - datetime.timedelta(days=15), end=today)
    Subscription.objects.filter(pk=sub.pk).update(plan=other)
    Customer.objects.filter(pk=sub.customer_id).update(country="DE")
    Customer.objects.filter(pk=sub.customer_id).update(country="DE")  # no change, no row
    assert FinanceSegmentChange.objects.filter(subscription=sub).count() == 2

    finance_snapshots_refresh(start=today - ONE_DAY, end=today)
    rows = {
        (r.day, r.plan, r.country): (r.active, r.mrr)
        for r in MetricsDay.objects.filter(day__gte=today - ONE_DAY).exclude(currency="")
    }
    assert rows == {
        (today - ONE_DAY, "seg-monthly", "US"): (1, Decimal(10)),
        (today, "seg-other", "DE"): (1, Decimal(10)),
    }


# --- invariants over any history ----------------------------------------------------------------

START = datetime.date(2026, 1, 1)
DAYS = 75


@st.composite
def histories(draw):
    """Up to 5 subscriptions, each a run of payments: (day offset, hour, price, currency, annual, refunded)."""
    subs = []
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        annual = draw(st.booleans())
        currency = draw(st.sampled_from(["USD", "EUR"]))
        country = draw(st.sampled_from(["US", "DE"]))
        payments = draw(
            st.lists(
                st.tuples(
                    st.integers(min_value=-40, max_value=DAYS),
                    st.integers(min_value=0, max_value=23),
                    st.sampled_from(["5.00", "8.00", "12.00"]),
                    st.booleans(),  # refunded in full
                ),
                min_size=1,
                max_size=5,
            )
        )
        subs.append((annual, currency, country, payments))
    return subs


def _snapshot() -> dict:
    return {
        tuple(r[k] for k in ("day", "product", "plan", "platform", "provider", "country", "currency")): tuple(
            r[k] for k in (*FIGURES, "active", "trials_ended", "trials_converted")
        )
        for r in MetricsDay.objects.values()
    }


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=histories())
def test_snapshot_rows_add_up_and_any_refreshed_range_equals_the_rebuild(history):
    monthly, annual = PlanFactory(interval="month"), PlanFactory(interval="year")
    end = START + datetime.timedelta(days=DAYS)
    with transaction.atomic():
        for i, (is_annual, currency, country, payments) in enumerate(history):
            sub = Subscription.objects.create(
                customer=Customer.objects.create(external_id=f"prop-{i}", handle=f"prop{i}", country=country),
                plan=annual if is_annual else monthly,
                platform="web",
                provider="stripe",
                provider_subscription_id=f"sub_prop_{i}",
                state=Subscription.State.ACTIVE,
                started_at=datetime.datetime(2025, 11, 1, tzinfo=UTC),
            )
            for n, (offset, hour, price, refunded) in enumerate(payments):
                payment = Payment.objects.create(
                    customer=sub.customer,
                    provider="stripe",
                    provider_reference=f"in_prop_{i}_{n}",
                    kind=Payment.Kind.RENEWAL,
                    amount=Money(price, currency),
                    fee=Money(0, currency),
                    tax=Money(0, currency),
                    commission=Money(0, currency),
                    refunded=Money(price if refunded else 0, currency),
                    status=Payment.Status.REFUNDED if refunded else Payment.Status.SUCCEEDED,
                    occurred_at=datetime.datetime.combine(
                        START + datetime.timedelta(days=offset), datetime.time(hour), tzinfo=UTC
                    ),
                )
                SubscriptionPayment.objects.create(payment=payment, subscription=sub)
        now = datetime.datetime.combine(end + ONE_DAY, datetime.time(), tzinfo=UTC)
        finance_snapshots_refresh(start=START - ONE_DAY, end=end, now=now, rebuild=True)
        rebuilt = _snapshot()
        ends: dict[tuple, Decimal] = {}
        for key, (start_, new, react, exp, con, churn, mrr, *_) in sorted(rebuilt.items()):
            day, *segment = key
            assert start_ + new + react + exp - con - churn == mrr, key
            if day > START - ONE_DAY:
                # Each segment's day starts where its day before ended.
                assert ends.get((day - ONE_DAY, *segment), 0) == start_, key
            ends[key] = mrr
        # Refreshing any part again (in any chunking) changes nothing.
        finance_snapshots_refresh(
            start=START + datetime.timedelta(days=20), end=START + datetime.timedelta(days=40), now=now
        )
        finance_snapshots_refresh(start=end - ONE_DAY, end=end, now=now)
        assert _snapshot() == rebuilt
        transaction.set_rollback(True)


# --- concurrency ---------------------------------------------------------------------------------


def _in_thread(fn):
    """Run ``fn`` on its own connection; returns (thread, box) where box holds its result or error."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


@pytest.mark.django_db(transaction=True)
def test_marking_a_day_never_waits_on_a_refresh_and_a_mark_made_meanwhile_stays_for_the_next():
    """A refresh can run for minutes; the webhook applying a late refund marks the refund's day in its own
    transaction and must not wait for it (it did: every worker stood in a lock queue behind a refresh). The
    refresh removes only the marks it read, so the mark made meanwhile is left for the next refresh."""
    day = datetime.date(2026, 3, 1)
    FinanceDirtyDay.objects.create(day=day, marked_at=clock.now())
    read, release = threading.Event(), threading.Event()

    def refresh_holding_the_marks():
        with transaction.atomic():
            dirty = finance_dirty_days_read()
            read.set()
            release.wait(10)
            finance_dirty_days_forget(dirty)
            return dirty.days

    def late_refund_marking_the_same_day():
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")  # waiting at all fails the test
            finance_days_touch(datetime.datetime(2026, 3, 1, 12, tzinfo=UTC))

    refresher, refreshed = _in_thread(refresh_holding_the_marks)
    assert read.wait(10)
    marker, marked = _in_thread(late_refund_marking_the_same_day)
    marker.join(10)
    assert not marker.is_alive() and "error" not in marked, marked  # done while the refresh still runs
    assert refresher.is_alive()
    release.set()
    refresher.join(10)
    assert "error" not in refreshed, refreshed
    assert refreshed["result"] == [day]
    assert list(FinanceDirtyDay.objects.values_list("day", flat=True)) == [day]  # the late mark, for the next
    assert any(start == day for start, _end in finance_snapshots_refresh_recent().ranges)
    assert not FinanceDirtyDay.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_of_the_same_days_leave_what_one_alone_leaves():
    plan = PlanFactory(code="snap-concurrent", interval="month")
    for i in range(6):
        sub = SubscriptionFactory(plan=plan, customer=CustomerFactory(country="DE" if i % 2 else "US"))
        pay(sub, "10.00", datetime.datetime(2026, 2, 1 + i * 4, 8, tzinfo=UTC), f"in_snap_conc_{i}")
    now = datetime.datetime(2026, 4, 1, tzinfo=UTC)
    start, end = datetime.date(2026, 2, 1), datetime.date(2026, 3, 31)
    finance_snapshots_refresh(start=start, end=end, now=now)
    alone = _snapshot()
    MetricsDay.objects.all().delete()
    gate = threading.Barrier(2)

    def refresh():
        gate.wait(10)
        return finance_snapshots_refresh(start=start, end=end, now=now).days

    runs = [_in_thread(refresh) for _ in range(2)]
    for thread, _ in runs:
        thread.join(60)
    assert [box.get("result") for _, box in runs] == [59, 59], [box.get("error") for _, box in runs]
    assert _snapshot() == alone

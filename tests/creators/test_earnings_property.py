"""Property: for any sequence of fan payments, refunds and disputes (lost or won), and of consumer payments
funding the pool (some refunded or lost to a dispute), across three currencies and two cycles, what each
creator was paid plus what is carried forward equals what they earned (pool parts and shares less
clawbacks), per creator and currency; the ledger agrees and no payment is reversed beyond its share.
Refunds and disputes go through the provider paths (refund and dispute reports), not the clawback directly."""

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creators.models import CreatorClawback, CreatorEarning, CreatorSubscriptionShare, Payout
from monetization.models import JournalLine
from monetization.services.ledger import ledger_report

from .factories import engagement, make_creator, staff
from .test_clawbacks import OCT, SEPT, Fans, _consumer_payment, at, dispute, refund, run_cycle

CURRENCIES = ("USD", "EUR", "GBP")

payment = st.tuples(
    st.integers(0, 1),  # creator
    st.sampled_from(CURRENCIES),
    st.integers(100, 4000),  # amount in cents
    st.integers(0, 1),  # cycle it is paid in
    st.lists(  # reversals: (kind, share of what is left in %, cycle it happens in (>= the payment's))
        st.tuples(st.sampled_from(["refund", "lost", "won"]), st.integers(1, 100), st.integers(0, 1)), max_size=3
    ),
)
consumer = st.tuples(  # a consumer payment funding the pool: currency, cents, cycle, its fate
    st.sampled_from(CURRENCIES), st.integers(100, 10000), st.integers(0, 1), st.sampled_from(["kept", "refund", "lost"])
)


@pytest.mark.django_db
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payments=st.lists(payment, min_size=1, max_size=8),
    consumers=st.lists(consumer, max_size=4),
    impressions=st.tuples(st.integers(0, 50), st.integers(0, 50)),
)
def test_paid_plus_carried_equals_earned_per_creator_and_currency(payments, consumers, impressions):
    with transaction.atomic():
        sid = transaction.savepoint()
        finance = staff("alice", "Finance"), staff("bob", "Finance")
        creators = [make_creator(), make_creator()]
        fans = [Fans(c) for c in creators]
        periods = (SEPT, OCT)
        schedule: dict[int, list] = {0: [], 1: []}
        for n, (who, cur, cents, when, reversals) in enumerate(payments):
            schedule[when].append(("pay", n, who, cur, cents))
            for k, (kind, pct, rwhen) in enumerate(reversals):
                schedule[max(when, rwhen)].append((kind, n, k, pct))
        for cur, cents, when, fate in consumers:
            schedule[when].append(("consumer", cur, cents, fate))
        made, disputed = {}, set()
        for cycle_no, period in enumerate(periods):
            for creator, score in zip(creators, impressions, strict=True):
                if score:
                    engagement(creator, period, impressions=score)
            for step in schedule[cycle_no]:
                if step[0] == "pay":
                    _, n, who, cur, cents = step
                    made[n] = fans[who].pay(str(Decimal(cents) / 100), cur, at(period, 5))
                elif step[0] == "consumer":
                    _, cur, cents, fate = step
                    p = _consumer_payment(str(Decimal(cents) / 100), cur, at(period, 5))
                    if fate == "refund":
                        refund(p, str((p.amount.amount / 2).quantize(Decimal("0.01"))), at(period, 15))
                    elif fate == "lost":
                        dispute(p, str(p.amount.amount), at(period, 15))
                else:
                    kind, n, k, pct = step
                    p = made[n]
                    if n in disputed:  # a chargeback is final: nothing is refunded or disputed after it
                        continue
                    p.refresh_from_db()
                    left = p.amount.amount - p.refunded.amount
                    amount = (left * pct / 100).quantize(Decimal("0.01"))
                    if amount <= 0:
                        continue
                    if kind == "refund":
                        refund(p, str(amount), at(period, 20))
                    else:
                        disputed.add(n)
                        dispute(p, str(amount), at(period, 20), status=kind)
            last = run_cycle(period, finance)

        for creator in creators:
            for cur in CURRENCIES:
                earned = (
                    sum(
                        CreatorEarning.objects.filter(creator=creator, currency=cur).values_list(
                            "pool_amount", flat=True
                        ),
                        Decimal(0),
                    )
                    + sum(
                        CreatorSubscriptionShare.objects.filter(creator=creator, currency=cur).values_list(
                            "amount", flat=True
                        ),
                        Decimal(0),
                    )
                    - sum(
                        CreatorClawback.objects.filter(creator=creator, currency=cur).values_list("amount", flat=True),
                        Decimal(0),
                    )
                )
                paid = sum(
                    Payout.objects.filter(creator=creator, currency=cur, status="paid").values_list(
                        "amount", flat=True
                    ),
                    Decimal(0),
                )
                carried = (
                    CreatorEarning.objects.filter(cycle=last, creator=creator, currency=cur)
                    .values_list("carried_out", flat=True)
                    .first()
                )
                if carried is None:  # nothing this cycle: what the previous one carried is still owed
                    carried = sum(
                        CreatorEarning.objects.filter(creator=creator, currency=cur)
                        .exclude(cycle=last)
                        .values_list("carried_out", flat=True),
                        Decimal(0),
                    )
                assert paid + carried == earned, (creator.pk, cur, paid, carried, earned)
        for share in CreatorSubscriptionShare.objects.all():
            taken = sum(share.clawbacks.values_list("amount", flat=True), Decimal(0))
            assert 0 <= taken <= share.amount
            if share.payment.amount.amount == sum(share.clawbacks.values_list("payment_amount", flat=True)):
                assert taken == share.amount  # fully reversed: the whole share back, to the cent
        for cur in CURRENCIES:
            owed = -sum(
                JournalLine.objects.filter(account="liability:creator_payable", currency=cur).values_list(
                    "amount", flat=True
                ),
                Decimal(0),
            )
            assert owed == sum(
                CreatorEarning.objects.filter(cycle=last, currency=cur).values_list("carried_out", flat=True),
                Decimal(0),
            ) + sum(
                CreatorEarning.objects.filter(cycle__period=SEPT, currency=cur)
                .exclude(creator_id__in=CreatorEarning.objects.filter(cycle=last, currency=cur).values("creator_id"))
                .values_list("carried_out", flat=True),
                Decimal(0),
            )
        assert ledger_report().balanced
        transaction.savepoint_rollback(sid)

"""Whatever two customers own, a merge or a transfer moves exactly what its preview counted, keeps every
amount, and leaves the books as they were: hypothesis over currencies, providers, payments and refunds."""

from collections import Counter
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from djmoney.money import Money
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization.models import CustomerMerge, JournalLine, Payment, Refund
from monetization.services.customer_merge import customer_merge_approve, customer_merge_request, ownership_move_preview
from monetization.services.ledger import ledger_report
from monetization.services.permissions import System
from monetization.services.refunds import refund_record_from_provider
from subscriptions.services.lifecycle import Cause
from subscriptions.services.payments import subscription_payment_record
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import SubscriptionFactory

CURRENCIES = ["USD", "JPY", "CHF"]  # CHF: no approval threshold, always waits
PROVIDERS = ["stripe", "app_store", "google_play"]
PLATFORM = {"stripe": "web", "app_store": "ios", "google_play": "android"}


@st.composite
def holding(draw):
    """One subscription and its payments: (provider, [(currency, amount units, refunded units)])."""
    provider = draw(st.sampled_from(PROVIDERS))
    payments = draw(
        st.lists(
            st.tuples(st.sampled_from(CURRENCIES), st.integers(1, 50_000), st.integers(0, 100)),
            min_size=0,
            max_size=3,
        )
    )
    return provider, payments


_refs = iter(range(10**9))


def _own(customer, holdings) -> list:
    subs = []
    for provider, payments in holdings:
        sub = SubscriptionFactory(customer=customer, provider=provider, platform=PLATFORM[provider])
        subs.append(sub)
        for currency, units, refunded_percent in payments:
            amount = Money(Decimal(units), currency)
            payment, _ = subscription_payment_record(
                subscription=sub,
                customer=customer,
                provider=provider,
                provider_reference=f"p{next(_refs)}",
                amount=amount,
                fee=Money(0, currency),
                tax=Money(0, currency),
            )
            refunded = (Decimal(units) * refunded_percent / 100).quantize(Decimal(1))
            if refunded > 0:
                refund_record_from_provider(
                    payment=payment,
                    amount=Money(refunded, currency),
                    provider_refund_id=f"r{next(_refs)}",
                    cause=Cause.provider_event(provider, f"e{next(_refs)}"),
                )
    return subs


def _holdings_of(customer) -> tuple[Counter, Counter]:
    paid, refunded = Counter(), Counter()
    for p in Payment.objects.filter(customer=customer):
        paid[str(p.amount.currency)] += p.amount.amount
    for r in Refund.objects.filter(customer=customer):
        refunded[str(r.amount.currency)] += r.amount.amount
    return paid, refunded


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    source_holdings=st.lists(holding(), min_size=0, max_size=3),
    target_holdings=st.lists(holding(), min_size=0, max_size=2),
    transfer_one=st.booleans(),
)
def test_a_move_moves_what_its_preview_counted_and_keeps_every_amount(source_holdings, target_holdings, transfer_one):
    decider = User.objects.get_or_create(username="decider", defaults={"is_staff": True, "is_superuser": True})[0]
    actor = System("property test")
    source, target = CustomerFactory(), CustomerFactory()
    subs = _own(source, source_holdings)
    _own(target, target_holdings)
    purchase = subs[0].pk if transfer_one and subs else None
    lines = list(JournalLine.objects.order_by("pk").values_list("pk", "amount", "currency", "account"))
    money = (
        sorted(Payment.objects.values_list("pk", "amount", "refunded")),
        sorted(Refund.objects.values_list("pk", "amount")),
    )
    before_source, before_target = _holdings_of(source), _holdings_of(target)

    preview = ownership_move_preview(source=source, target=target, purchase_id=purchase, actor=actor)
    merge = customer_merge_request(source=source, target=target, purchase_id=purchase, reason="r", requested_by=actor)
    if merge.status == CustomerMerge.Status.PENDING_APPROVAL:
        merge = customer_merge_approve(merge=merge, approved_by=decider, reason="ok")

    assert merge.status == CustomerMerge.Status.COMPLETED
    assert merge.moved == [m.as_dict() for m in preview.moved]
    # Nothing is created, deleted or changed in value: only owners change.
    assert list(JournalLine.objects.order_by("pk").values_list("pk", "amount", "currency", "account")) == lines
    assert (
        sorted(Payment.objects.values_list("pk", "amount", "refunded")),
        sorted(Refund.objects.values_list("pk", "amount")),
    ) == money
    assert ledger_report().balanced
    after_source, after_target = _holdings_of(source), _holdings_of(target)
    for kind in (0, 1):  # paid, refunded: what one lost the other gained, per currency
        assert after_source[kind] + after_target[kind] == before_source[kind] + before_target[kind]
    moved = {m["what"]: m for m in merge.moved}
    paid_moved = Counter({c: Decimal(v) for c, v in moved["payments"]["amounts"].items()})
    assert after_target[0] == before_target[0] + paid_moved
    if purchase is None:
        assert not Payment.objects.filter(customer=source).exists()

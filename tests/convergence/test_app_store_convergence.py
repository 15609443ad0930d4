"""App Store histories delivered in order and shuffled (repeated, in waves) to a real worker end where
Apple's book ends: subscription state, access, payments, refunds and the ledger.

``SOAK_HISTORIES`` scales it (``make soak``: thousands); CI runs the default.
"""

import dataclasses
import os
import random
from decimal import Decimal

import pytest

from monetization.models import JournalLine, Payment, ProviderIdentity
from monetization.services.ledger import Account
from tests.monetization.factories import CustomerFactory

from .app_store_sim import START, YEARLY, _Apple, app_store_history
from .harness import deliver_in_order, settle, soak_batches, store_batch

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.worker,
    pytest.mark.timeout(int(os.environ.get("SOAK_TIMEOUT", "300"))),
]
HISTORIES = int(os.environ.get("SOAK_HISTORIES", "120"))


@pytest.fixture
def app_store_settings(settings, apple_pki, tmp_path):
    from tests.webhooks.support import APP_APPLE_ID, BUNDLE_ID

    settings.APP_STORE_ROOT_CERTS = str(apple_pki.write_root(tmp_path / "AppleRootCA-test.cer"))
    settings.APP_STORE_BUNDLE_ID = BUNDLE_ID
    settings.APP_STORE_APP_APPLE_ID = APP_APPLE_ID
    settings.APP_STORE_ENVIRONMENT = "Production"
    return settings


def _expected(book) -> dict:
    """What Apple's book says we should hold, in customer_books' words."""
    return {
        "state": book.state,
        "plan": book.plan,
        "entitled": book.entitled,
        "payments": sorted(
            (txid, f"{cents / 100:.4f}", f"{book.refunded.get(txid, 0) / 100:.4f}")
            for txid, cents in book.payments.items()
        ),
        "refunds": Decimal(sum(book.refunded.values())) / 100,
    }


def _held(books: dict) -> dict:
    (subscription,) = books["subscriptions"]
    return {
        "state": subscription[3],
        "plan": subscription[2],
        "entitled": bool(books["entitlements"]),
        "payments": sorted((ref, amount, refunded) for _p, ref, _k, amount, _c, _s, refunded in books["payments"]),
        # What was given back, refund by refund. Not the contra account alone: a refund of a yearly plan's
        # payment comes out of deferred revenue first (monetization/services/revenue_recognition.py).
        "refunds": sum(
            (Decimal(amount) for _ref, amount, status in books["refunds"] if status == "succeeded"), Decimal(0)
        ),
    }


def test_app_store_histories_converge_on_apples_book(
    app_store_settings, soak_workers, soak_server, store_catalog, apple_pki, make_api_key
):
    api_key, _ = make_api_key("purchases:write")

    def history(i: int, namespace: str):
        book, deliveries = app_store_history(random.Random(1000 + i), namespace, pki=apple_pki, api_key=api_key)
        customer = CustomerFactory(external_id=book.external_id)
        if not book.linked_by_purchase_call:  # the app linked it at sign-up; otherwise its purchase call does
            ProviderIdentity.objects.create(
                customer=customer,
                provider="app_store",
                kind=ProviderIdentity.Kind.APP_ACCOUNT_TOKEN,
                value=book.account_token,
            )
        return book, deliveries

    server = soak_server()

    def run_batch(first: int, count: int):
        return store_batch(server, first, count, prefix="A", history=history, expected=_expected, held=_held)

    outcome = soak_batches("app_store", HISTORIES, run_batch)
    assert outcome.diverged == [], f"{len(outcome.diverged)} of {HISTORIES} diverged, e.g. {outcome.diverged[:3]}"


def test_the_store_commission_of_a_renewal_does_not_depend_on_the_order_payments_arrive_in(
    app_store_settings, soak_workers, soak_server, store_catalog, apple_pki, make_api_key
):
    """Three yearly payments whose notifications arrive newest first: Apple keeps 30% of the first year and
    15% of the two after it (a year of paid service since the original purchase), as it does in order."""
    api_key, _ = make_api_key("purchases:write")
    apple = _Apple(random.Random(0), "AC1Z", apple_pki, api_key)
    apple.book.family = False  # the subscriber pays
    apple.product = apple.next_product = YEARLY
    apple.pay("SUBSCRIBED", "INITIAL_BUY", START)
    apple.pay("DID_RENEW", "", apple.tx["expiresDate"])
    apple.pay("DID_RENEW", "", apple.tx["expiresDate"])
    customer = CustomerFactory(external_id=apple.book.external_id, country="US")
    ProviderIdentity.objects.create(
        customer=customer,
        provider="app_store",
        kind=ProviderIdentity.Kind.APP_ACCOUNT_TOKEN,
        value=apple.book.account_token,
    )
    server = soak_server()
    for delivery in reversed(apple.deliveries):  # each applied before the one Apple sent before it arrives
        assert deliver_in_order(server, [dataclasses.replace(delivery, seq=0)]).all_accepted
        settle(timeout=120)

    payments = Payment.objects.filter(customer=customer).order_by("occurred_at")
    assert [p.commission.amount for p in payments] == [Decimal("30.00"), Decimal("15.00"), Decimal("15.00")]
    kept = JournalLine.objects.filter(entry__customer=customer, account=Account.STORE_COMMISSION)
    assert sum(line.amount for line in kept) == Decimal("60.00")

"""App Store plan changes within a subscription group and family sharing, through the real endpoint.

An UPGRADE (DID_CHANGE_RENEWAL_PREF) is a new transaction, charged and in effect at once: the plan
changes and the payment is booked, whatever order it arrives in. A family member's transactions
(``FAMILY_SHARED``) were paid by the purchaser: they give access and book no money; REVOKE ends it.
"""

import pytest
from djmoney.money import Money

from monetization.models import JournalLine, Payment
from subscriptions.models import Plan, Platform, Subscription
from subscriptions.services.provider_sync import _SKU_CACHE
from tests.subscriptions.factories import SkuFactory

from .support import app_store_notification, post_app_store

pytestmark = pytest.mark.django_db(transaction=True)
OTID = "2000000812345001"
T0 = 1767225605000  # ms
DAY = 86_400_000
PLUS = "com.example.premium.plus.monthly"


@pytest.fixture
def plus_on_ios(catalog):
    SkuFactory(plan=Plan.objects.get(code="premium-plus-monthly"), platform=Platform.IOS, store_product_id=PLUS)
    _SKU_CACHE.clear()
    yield
    _SKU_CACHE.clear()


def _notify(client, pki, ntype, subtype=None, *, uuid, at, tx=None, renewal=None):
    body, _ = app_store_notification(
        pki,
        notification_type=ntype,
        subtype=subtype,
        uuid=uuid,
        signed_ms=at,
        transaction_updates=tx,
        renewal_updates=renewal,
    )
    response = post_app_store(client, body)
    assert response.status_code == 200, response.content
    return response


UPGRADE_TX = {
    "transactionId": "2000000812345002",
    "productId": PLUS,
    "purchaseDate": T0 + 10 * DAY,
    "expiresDate": T0 + 40 * DAY,
    "price": 19990,
    "transactionReason": "PURCHASE",
}


@pytest.mark.parametrize("upgrade_first", [False, True])
def test_an_upgrade_is_charged_and_in_effect_at_once(client, apple_pki, catalog, customers, plus_on_ios, upgrade_first):
    steps = [
        lambda: _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0),
        lambda: _notify(
            client,
            apple_pki,
            "DID_CHANGE_RENEWAL_PREF",
            "UPGRADE",
            uuid="n-2",
            at=T0 + 10 * DAY + 1000,
            tx=UPGRADE_TX,
            renewal={"productId": PLUS, "autoRenewProductId": PLUS, "renewalPrice": 19990},
        ),
    ]
    for step in reversed(steps) if upgrade_first else steps:
        step()
    sub = Subscription.objects.get(provider="app_store", provider_subscription_id=OTID)
    assert sub.plan.code == "premium-plus-monthly" and sub.state == Subscription.State.ACTIVE
    upgrade = Payment.objects.get(provider="app_store", provider_reference="2000000812345002")
    assert upgrade.amount == Money("19.99", "USD") and upgrade.kind == Payment.Kind.UPGRADE
    assert Payment.objects.filter(provider="app_store").count() == 2
    revenue = sum(line.amount for line in JournalLine.objects.filter(account="revenue:subscriptions"))
    assert revenue == -(Money("9.99", "USD").amount + Money("19.99", "USD").amount)


def test_a_downgrade_waits_for_the_renewal(client, apple_pki, catalog, customers, plus_on_ios):
    _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0, tx={"productId": PLUS, "price": 19990})
    _notify(
        client,
        apple_pki,
        "DID_CHANGE_RENEWAL_PREF",
        "DOWNGRADE",
        uuid="n-2",
        at=T0 + DAY,
        tx={"productId": PLUS, "price": 19990},
        renewal={"productId": PLUS, "autoRenewProductId": "com.example.premium.monthly"},
    )
    sub = Subscription.objects.get(provider="app_store", provider_subscription_id=OTID)
    assert sub.plan.code == "premium-plus-monthly"  # what was paid for runs to its end
    assert Payment.objects.filter(provider="app_store").count() == 1


def test_a_family_member_gets_access_without_a_payment_until_revoked(client, apple_pki, catalog, customers):
    family = {"inAppOwnershipType": "FAMILY_SHARED"}
    _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="n-1", at=T0, tx=family)
    sub = Subscription.objects.get(provider="app_store", provider_subscription_id=OTID)
    assert sub.state == Subscription.State.ACTIVE
    assert not Payment.objects.filter(provider="app_store").exists()  # the purchaser paid, not them
    renewed = {
        **family,
        "transactionId": "2000000812345002",
        "purchaseDate": 1769904000000,
        "expiresDate": 1772323200000,
    }
    _notify(client, apple_pki, "DID_RENEW", uuid="n-2", at=1769904005000, tx=renewed)
    assert not Payment.objects.filter(provider="app_store").exists()
    revoked = {**renewed, "revocationDate": 1770000000000, "revocationReason": 0, "revocationType": "FAMILY_REVOKE"}
    _notify(client, apple_pki, "REVOKE", uuid="n-3", at=1770000001000, tx=revoked)
    sub.refresh_from_db()
    assert sub.state == Subscription.State.REVOKED
    assert not JournalLine.objects.exists()


YEARLY = "com.example.premium.yearly"


@pytest.mark.parametrize("renewal_first", [False, True])
def test_a_payment_is_deferred_by_its_own_product_not_the_plan_it_is_booked_under(
    client, apple_pki, catalog, customers, renewal_first
):
    """The first month is paid monthly, the renewal buys a year. Delivered shuffled, the monthly payment
    is booked after the subscription is already yearly: its revenue is still the month's, not deferred."""
    yearly = Plan.objects.create(product=catalog.product, code="premium-yearly", interval=Plan.Interval.YEAR)
    SkuFactory(plan=yearly, platform=Platform.IOS, store_product_id=YEARLY)
    _SKU_CACHE.clear()
    renewal_tx = {
        "transactionId": "2000000812345003",
        "productId": YEARLY,
        "purchaseDate": T0 + 30 * DAY,
        "expiresDate": T0 + 395 * DAY,
        "price": 99990,
        "transactionReason": "RENEWAL",
    }
    steps = [
        lambda: _notify(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="y-1", at=T0),
        lambda: _notify(
            client,
            apple_pki,
            "DID_RENEW",
            uuid="y-2",
            at=T0 + 30 * DAY + 1000,
            tx=renewal_tx,
            renewal={"productId": YEARLY, "autoRenewProductId": YEARLY, "renewalPrice": 99990},
        ),
    ]
    for step in reversed(steps) if renewal_first else steps:
        step()
    _SKU_CACHE.clear()
    assert Payment.objects.filter(provider="app_store").count() == 2
    monthly = Payment.objects.exclude(provider_reference="2000000812345003").get(provider="app_store")

    def deferred(payment):
        return JournalLine.objects.filter(
            account="liability:deferred_revenue",
            entry__source_type="monetization.payment",
            entry__source_id=str(payment.pk),
        ).exists()

    assert not deferred(monthly), "the month's payment was deferred as if it bought a year"
    assert deferred(Payment.objects.get(provider_reference="2000000812345003"))

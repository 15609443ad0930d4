"""A store's price increase as each subscriber answers it, from signed notifications: App Store PRICE_INCREASE
(PENDING / ACCEPTED) and renewal info priceIncreaseStatus, Play's priceChangeDetails read back on
SUBSCRIPTION_PRICE_CHANGE_UPDATED / CONFIRMED. Whoever has not accepted keeps their price; whoever accepted
pays the new one from its date; one Apple lets lapse for not consenting ended for price_increase."""

import datetime as dt

import pytest
from djmoney.money import Money

from monetization.models import AuditEvent
from subscriptions.models import Platform, Price, PriceChange, Subscription
from subscriptions.services.price_changes import subscription_price

from .support import (
    PLAY_TOKEN,
    app_store_notification,
    play_push,
    play_resource,
    post_app_store,
    post_play,
)

pytestmark = pytest.mark.django_db(transaction=True)

DAY_MS = 86_400_000
T0 = 1767225605000  # 2026-01-01, when the recorded subscriptions start
EFFECTIVE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
OLD, NEW = Money("9.99", "USD"), Money("12.99", "USD")


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


@pytest.fixture
def increase(catalog):
    """Each store's price for Premium monthly in the US, and an increase announced on 5 January for 1 March
    that existing subscribers answer in the store (existing subscribers keep theirs unless they accept)."""

    def schedule(platform: str) -> None:
        Price.objects.create(
            plan=catalog, platform=platform, country="US", amount=OLD, valid_from=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
        )
        price = Price.objects.create(plan=catalog, platform=platform, country="US", amount=NEW, valid_from=EFFECTIVE)
        PriceChange.objects.create(
            plan=catalog,
            platform=platform,
            country="US",
            amount=NEW,
            price=price,
            announced_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
            effective_at=EFFECTIVE,
            reason="2026 price review",
        )

    return schedule


def _price(sub: Subscription, at: dt.datetime) -> Money:
    sub.refresh_from_db()
    return subscription_price(sub, country="US", at=at).amount


def _apple(client, pki, ntype, subtype, *, uuid, at, renewal=None):
    body, _ = app_store_notification(
        pki, notification_type=ntype, subtype=subtype, uuid=uuid, signed_ms=at, renewal_updates=renewal
    )
    assert post_app_store(client, body).status_code == 200


def test_an_app_store_subscriber_pays_the_increase_only_once_they_consent(client, apple_pki, customers, increase):
    increase(Platform.IOS)
    _apple(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="p-1", at=T0)
    sub = Subscription.objects.get()

    _apple(
        client,
        apple_pki,
        "PRICE_INCREASE",
        "PENDING",
        uuid="p-2",
        at=T0 + 9 * DAY_MS,
        renewal={"priceIncreaseStatus": 0},
    )
    sub.refresh_from_db()
    assert (sub.price_increase, sub.price_consented_at) == ("pending", None)
    assert _price(sub, EFFECTIVE + dt.timedelta(days=1)) == OLD  # not answered: keeps the old price

    consented = T0 + 14 * DAY_MS
    _apple(
        client, apple_pki, "PRICE_INCREASE", "ACCEPTED", uuid="p-3", at=consented, renewal={"priceIncreaseStatus": 1}
    )
    sub.refresh_from_db()
    assert sub.price_increase == "accepted" and _ms(sub.price_consented_at) == consented
    assert _price(sub, EFFECTIVE - dt.timedelta(days=1)) == OLD  # from its date on, not before
    assert _price(sub, EFFECTIVE + dt.timedelta(days=1)) == NEW

    # A late redelivery of the pending notice is older than the consent: nothing moves back.
    _apple(
        client,
        apple_pki,
        "PRICE_INCREASE",
        "PENDING",
        uuid="p-2",
        at=T0 + 9 * DAY_MS,
        renewal={"priceIncreaseStatus": 0},
    )
    # Renewal info that no longer names the increase (it applied) keeps the consent.
    _apple(client, apple_pki, "DID_CHANGE_RENEWAL_PREF", None, uuid="p-4", at=T0 + 20 * DAY_MS)
    sub.refresh_from_db()
    assert sub.price_increase == "accepted" and _price(sub, EFFECTIVE + dt.timedelta(days=1)) == NEW
    assert AuditEvent.objects.filter(action="subscription.price_increase").count() == 2


def test_an_app_store_subscriber_who_never_consents_keeps_the_price_and_ends_for_it(
    client, apple_pki, customers, increase
):
    increase(Platform.IOS)
    _apple(client, apple_pki, "SUBSCRIBED", "INITIAL_BUY", uuid="q-1", at=T0)
    _apple(
        client,
        apple_pki,
        "PRICE_INCREASE",
        "PENDING",
        uuid="q-2",
        at=T0 + 9 * DAY_MS,
        renewal={"priceIncreaseStatus": 0},
    )
    # Apple lets it lapse at the renewal the increase would have applied to.
    _apple(
        client,
        apple_pki,
        "EXPIRED",
        "PRICE_INCREASE",
        uuid="q-3",
        at=1769904001000,
        renewal={"priceIncreaseStatus": 0, "autoRenewStatus": 0, "expirationIntent": 3},
    )
    sub = Subscription.objects.get()
    assert (sub.state, sub.cancel_reason, sub.price_increase) == (
        Subscription.State.EXPIRED,
        "price_increase",
        "pending",
    )
    assert _price(sub, EFFECTIVE + dt.timedelta(days=1)) == OLD


def _play(client, play_client, code: int, *, state: str, message_id: str, at: int):
    resource = play_resource("SUBSCRIPTION_STATE_ACTIVE", acknowledgementState="ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED")
    resource["lineItems"][0]["autoRenewingPlan"]["priceChangeDetails"] = {
        "newPrice": {"currencyCode": "USD", "units": "12", "nanos": 990000000},
        "priceChangeMode": "PRICE_INCREASE",
        "priceChangeState": state,
        "expectedNewPriceChargeTime": "2026-03-01T00:00:00Z",
    }
    play_client.resources[PLAY_TOKEN] = resource
    assert post_play(client, play_push(code=code, message_id=message_id, event_ms=at)).status_code == 200


def test_a_play_subscriber_pays_the_increase_once_they_confirm_it(client, play_client, customers, increase):
    increase(Platform.ANDROID)
    # SUBSCRIPTION_PRICE_CHANGE_UPDATED (19): the opt-in increase waits for the subscriber.
    _play(client, play_client, 19, state="OUTSTANDING", message_id="pc-1", at=T0 + 9 * DAY_MS)
    sub = Subscription.objects.get()
    assert sub.price_increase == "pending" and _price(sub, EFFECTIVE + dt.timedelta(days=1)) == OLD
    # SUBSCRIPTION_PRICE_CHANGE_CONFIRMED (8).
    _play(client, play_client, 8, state="CONFIRMED", message_id="pc-2", at=T0 + 14 * DAY_MS)
    sub.refresh_from_db()
    # Play's resource is read back now: the consent is dated when we learnt it.
    assert sub.price_increase == "accepted" and sub.price_consented_at is not None
    assert _price(sub, EFFECTIVE + dt.timedelta(days=1)) == NEW

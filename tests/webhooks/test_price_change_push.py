"""A web price change that moves existing subscribers reaches Stripe: before the renewal it takes effect at,
the subscription's item switches to the change's Stripe price with no proration (the period paid keeps the
old price), once per subscription under an idempotency key, whatever how often the task runs; Stripe's echo
of the new price is still the plan's subscription."""

import datetime as dt
from urllib.parse import parse_qs

import pytest
from djmoney.money import Money

from monetization.models import AuditEvent, Customer
from subscriptions.models import Platform, Price, PriceChange, PriceChangePush, Subscription
from subscriptions.services.price_changes import price_changes_push

from .conftest import WEB_CUSTOMER
from .support import post_stripe, stripe_subscription_event, stripe_subscription_object

pytestmark = pytest.mark.django_db(transaction=True)

SUB_ID = "sub_1QwebPremium0000000001"
NEW_PRICE_ID = "price_1QpremiumMonthlyUSD0002"
EFFECTIVE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
FEB_1, MAR_1 = 1769904000, 1772323200


@pytest.fixture
def web_move(catalog, customers):
    Customer.objects.filter(external_id=WEB_CUSTOMER).update(country="US")
    price = Price.objects.create(
        plan=catalog, platform=Platform.WEB, country="US", amount=Money("10.00", "USD"), valid_from=EFFECTIVE
    )
    return PriceChange.objects.create(
        plan=catalog,
        platform=Platform.WEB,
        country="US",
        amount=Money("10.00", "USD"),
        price=price,
        existing_subscribers=PriceChange.ExistingSubscribers.MOVE,
        announced_at=dt.datetime(2026, 1, 5, tzinfo=dt.UTC),
        effective_at=EFFECTIVE,
        reason="2026 price review",
        stripe_price_id=NEW_PRICE_ID,
    )


def _updates(stripe_http) -> list[dict]:
    return [r for r in stripe_http.requests if r["method"] == "post" and r["path"] == f"/v1/subscriptions/{SUB_ID}"]


def test_a_web_subscriber_moves_to_the_new_stripe_price_once_before_the_renewal_it_applies_at(
    client, stripe_http, web_move
):
    first = stripe_subscription_event(event_id="evt_1QpushSubscribed00000001", created=1767225605)
    assert post_stripe(client, first).status_code == 200
    stripe_http.responses[("get", f"/v1/subscriptions/{SUB_ID}")] = stripe_subscription_object()
    stripe_http.responses[("post", f"/v1/subscriptions/{SUB_ID}")] = stripe_subscription_object(price_id=NEW_PRICE_ID)

    # The period ending 1 February renews before the change: nothing to push yet.
    run = price_changes_push(now=dt.datetime(2026, 1, 20, tzinfo=dt.UTC))
    assert (run.claimed, run.pushed) == (0, 0) and not _updates(stripe_http)

    # Renewed on 1 February: the next renewal (1 March) is the change's.
    renewed = stripe_subscription_event(
        event_id="evt_1QpushRenewed0000000001", created=FEB_1 + 5, period_start=FEB_1, period_end=MAR_1
    )
    assert post_stripe(client, renewed).status_code == 200
    run = price_changes_push(now=dt.datetime(2026, 2, 2, tzinfo=dt.UTC))
    assert (run.claimed, run.pushed, run.failed) == (1, 1, 0)
    [update] = _updates(stripe_http)
    body = parse_qs(update["body"])
    assert body["items[0][price]"] == [NEW_PRICE_ID] and body["proration_behavior"] == ["none"]
    push = PriceChangePush.objects.get()
    assert {k.lower(): v for k, v in update["headers"].items()}["idempotency-key"] == push.idempotency_key
    assert push.pushed_at is not None and push.subscription.provider_subscription_id == SUB_ID

    # Later runs push nothing again.
    run = price_changes_push(now=dt.datetime(2026, 2, 3, tzinfo=dt.UTC))
    assert (run.claimed, run.pushed) == (0, 0) and len(_updates(stripe_http)) == 1
    assert AuditEvent.objects.filter(action="subscription.price_moved").count() == 1

    # Stripe's echo names the new price: still the same plan's subscription.
    echo = stripe_subscription_event(
        event_id="evt_1QpushEcho000000000001",
        created=FEB_1 + 86400 + 10,
        period_start=FEB_1,
        period_end=MAR_1,
        price_id=NEW_PRICE_ID,
    )
    assert post_stripe(client, echo).status_code == 200
    sub = Subscription.objects.get()
    assert sub.plan == web_move.plan and sub.last_event_at == dt.datetime.fromtimestamp(FEB_1 + 86400 + 10, dt.UTC)


def test_a_subscriber_who_cancelled_or_lives_elsewhere_is_not_moved(client, stripe_http, web_move):
    Customer.objects.filter(external_id=WEB_CUSTOMER).update(country="DE")
    event = stripe_subscription_event(
        event_id="evt_1QpushElsewhere00000001", created=FEB_1 + 5, period_start=FEB_1, period_end=MAR_1
    )
    assert post_stripe(client, event).status_code == 200
    assert price_changes_push(now=dt.datetime(2026, 2, 2, tzinfo=dt.UTC)).claimed == 0
    Customer.objects.filter(external_id=WEB_CUSTOMER).update(country="US")
    cancelled = stripe_subscription_event(
        event_id="evt_1QpushCancelled00000001",
        created=FEB_1 + 10,
        period_start=FEB_1,
        period_end=MAR_1,
        cancel_at_period_end=True,
    )
    assert post_stripe(client, cancelled).status_code == 200
    assert price_changes_push(now=dt.datetime(2026, 2, 2, tzinfo=dt.UTC)).claimed == 0
    assert not _updates(stripe_http)

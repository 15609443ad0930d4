"""resync_provider pulls what the provider has and converges to what the webhooks would have produced."""

import io

import pytest
from django.core.management import call_command

from monetization.models import Payment, WebhookEvent
from monetization.providers.base import get_provider
from subscriptions.models import Subscription

from .support import (
    PLAY_TOKEN,
    RecordedAppStoreClient,
    app_store_notification,
    play_resource,
    post_app_store,
    post_stripe,
    stripe_invoice_event,
    stripe_subscription_event,
)

pytestmark = pytest.mark.django_db(transaction=True)
FIELDS = ("state", "current_period_start", "current_period_end", "auto_renew", "plan_id", "last_event_at")


def _stripe_events(sub_id: str, prefix: str) -> list[dict]:
    return [
        stripe_subscription_event(
            event_id=f"{prefix}1",
            created=1767225600,
            sub_id=sub_id,
            status="incomplete",
            event_type="customer.subscription.created",
        ),
        stripe_subscription_event(event_id=f"{prefix}2", created=1767225660, sub_id=sub_id, status="active"),
        stripe_invoice_event(
            event_id=f"{prefix}3",
            created=1767225670,
            invoice_id=f"in_{prefix}",
            sub_id=sub_id,
            billing_reason="subscription_create",
        ),
        stripe_subscription_event(event_id=f"{prefix}4", created=1767225900, sub_id=sub_id, status="past_due"),
    ]


def _state(provider: str, ref: str) -> tuple:
    sub = Subscription.objects.get(provider=provider, provider_subscription_id=ref)
    return tuple(getattr(sub, f) for f in FIELDS), list(sub.payments.values_list("amount", "kind"))


def test_stripe_resync_converges_like_webhooks_and_dedupes(client, catalog, customers, stripe_http):
    for event in _stripe_events("sub_A", "evt_a"):
        post_stripe(client, event)
    # Sub B's events were never delivered: Stripe's event list (newest first, like Stripe) has them.
    missed = list(reversed(_stripe_events("sub_B", "evt_b")))
    stripe_http.responses[("get", "/v1/events")] = {
        "object": "list",
        "data": missed,
        "has_more": False,
        "url": "/v1/events",
    }
    out = io.StringIO()
    call_command("resync_provider", "stripe", "--since", "2026-01-01", stdout=out)
    assert _state("stripe", "sub_A") == _state("stripe", "sub_B")
    assert "seen 4, new 4" in out.getvalue()
    request = stripe_http.requests[0]
    assert "created[gte]=1767225600" in request["url"]

    # A second run finds nothing new.
    out = io.StringIO()
    call_command("resync_provider", "stripe", "--since", "2026-01-01", stdout=out)
    assert "seen 4, new 0" in out.getvalue()
    assert WebhookEvent.objects.filter(provider="stripe").count() == 8


def test_app_store_resync_reads_notification_history(client, apple_pki, catalog, customers):
    bodies = []
    for i, (ntype, subtype, at) in enumerate(
        [
            ("SUBSCRIBED", "INITIAL_BUY", 1767225605000),
            ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", 1767300000000),
        ]
    ):
        body, _ = app_store_notification(
            apple_pki,
            notification_type=ntype,
            subtype=subtype,
            uuid=f"u-{i}",
            signed_ms=at,
            renewal_updates={"autoRenewStatus": 0} if i else None,
        )
        bodies.append(body)
    import json

    history = [
        {
            "signedPayload": json.loads(b)["signedPayload"],
            "sendAttempts": [{"attemptDate": 1767225606000, "sendAttemptResult": "TIMED_OUT"}],
        }
        for b in bodies
    ]
    api = RecordedAppStoreClient(
        {
            ("POST", "/inApps/v1/notifications/history"): [
                {"notificationHistory": history[:1], "hasMore": True, "paginationToken": "page-2"},
                {"notificationHistory": history[1:], "hasMore": False},
            ]
        }
    )
    get_provider("app_store").api_client = api
    post_app_store(client, bodies[0])  # the first one did arrive
    out = io.StringIO()
    call_command("resync_provider", "app-store", "--since", "2026-01-01T00:00:00", stdout=out)
    sub = Subscription.objects.get(provider="app_store")
    assert sub.state == Subscription.State.CANCELED and sub.auto_renew is False
    assert "seen 2, new 1" in out.getvalue()
    assert api.requests_made[1]["params"] == {"paginationToken": ["page-2"]}
    assert Payment.objects.filter(provider="app_store").count() == 1


def test_play_resync_rereads_known_tokens(client, catalog, customers, play_client):
    from .support import play_push, post_play

    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE")
    post_play(client, play_push(code=4, message_id="m-1", event_ms=1767225605123))
    # The ON_HOLD notification was lost; the store says so now.
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ON_HOLD")
    call_command("resync_provider", "google-play", "--since", "2026-01-01", stdout=io.StringIO())
    assert Subscription.objects.get(provider="google_play").state == Subscription.State.ON_HOLD


def test_bad_since_is_refused():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("resync_provider", "stripe", "--since", "yesterday")

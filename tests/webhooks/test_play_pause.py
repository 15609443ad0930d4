"""Play's paused state: the user pauses in the store; the pause holds through every event that does not end it."""

import pytest

from monetization.models import Payment
from subscriptions.models import Subscription

from .conftest import ANDROID_CUSTOMER
from .support import PLAY_TOKEN, play_push, play_resource, post_play

pytestmark = pytest.mark.django_db(transaction=True)
T0 = 1767225605123
ACKED = {"acknowledgementState": "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED"}
S = Subscription.State


def _state() -> str:
    return Subscription.objects.get(provider="google_play", provider_subscription_id=PLAY_TOKEN).state


def test_a_play_pause_survives_later_events_until_play_resumes_it(
    client, client_with_scopes, catalog, customers, play_client
):
    api = client_with_scopes("entitlements:read")

    def keys():
        return api.get(f"/api/v1/customers/{ANDROID_CUSTOMER}/entitlements").json()["entitlements"]

    renewed = "GPA.3312-5478-9012-34567..0"
    play_client.resources[PLAY_TOKEN] = play_resource("SUBSCRIPTION_STATE_ACTIVE", **ACKED)
    post_play(client, play_push(code=4, message_id="m-0", event_ms=T0))
    play_client.resources[PLAY_TOKEN] = play_resource(
        "SUBSCRIPTION_STATE_PAUSED", latestSuccessfulOrderId=renewed, **ACKED
    )
    post_play(client, play_push(code=10, message_id="m-10", event_ms=T0 + 3000))
    assert _state() == S.PAUSED and keys() == []
    # Late and unrelated notifications re-read the purchase: Play still says paused.
    for code, message_id in [(2, "m-2-late"), (11, "m-11"), (8, "m-8"), (1, "m-1-late"), (4, "m-0-again")]:
        post_play(client, play_push(code=code, message_id=message_id, event_ms=T0 + 1000))
        assert _state() == S.PAUSED, code
    assert keys() == []
    assert Payment.objects.filter(provider="google_play").count() == 2  # the renewal before the pause, once
    # The pause ends when Play says so.
    play_client.resources[PLAY_TOKEN] = play_resource(
        "SUBSCRIPTION_STATE_ACTIVE", latestSuccessfulOrderId=renewed, **ACKED
    )
    post_play(client, play_push(code=1, message_id="m-1", event_ms=T0 + 9000))
    assert _state() == S.ACTIVE and len(keys()) == 2

"""Google Play refunds a purchase that is not acknowledged within 3 days: make sure none slips through.

Acknowledging normally happens when the purchase notification is applied (or
the app submits the token). This sweep catches the ones that failed there.
"""

from __future__ import annotations

import logging

from django.conf import settings

from monetization import clock
from monetization.providers.base import ProviderError, get_provider
from subscriptions.models import Subscription

log = logging.getLogger(__name__)


def play_acknowledge_pending(*, limit: int = 500) -> int:
    since = clock.now() - settings.GOOGLE_PLAY_ACKNOWLEDGE_WITHIN
    pending = Subscription.objects.filter(
        provider="google_play",
        acknowledged_at__isnull=True,
        created_at__gte=since,
        state__in=[*Subscription.ENTITLING_STATES],
    ).values_list("pk", "provider_subscription_id")[:limit]
    provider = get_provider("google_play")
    done = 0
    for pk, token in pending:
        try:
            snapshot = provider.fetch_subscription(token)
            provider.acknowledge_pending(snapshot)
        except ProviderError:
            log.warning("could not acknowledge Play purchase of subscription %s", pk, exc_info=True)
            continue
        Subscription.objects.filter(pk=pk, acknowledged_at__isnull=True).update(acknowledged_at=clock.now())
        done += 1
    return done

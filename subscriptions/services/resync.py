"""Recover missed notifications: pull what the provider has and converge through the same appliers.

Events pulled here go through the inbox like webhooks (unique provider +
event id), so anything already received is skipped, and whatever is new is
applied in this process with the same code a worker would run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import islice

from django.db.models import Q

from monetization.models import Provider
from monetization.providers.base import ProviderEvent, get_provider
from monetization.services.webhooks import webhook_event_apply, webhook_store
from subscriptions.models import Subscription

CHUNK = 100


@dataclass
class ResyncProgress:
    seen: int = 0
    new: int = 0
    applied: int = 0
    ignored: int = 0
    failed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _play_tokens(since: datetime) -> list[str]:
    return list(
        Subscription.objects.filter(provider=Provider.GOOGLE_PLAY)
        .filter(Q(updated_at__gte=since) | Q(state__in=Subscription.LIVE_STATES))
        .values_list("provider_subscription_id", flat=True)
        .iterator(chunk_size=2000)
    )


def provider_resync(
    *, provider: str, since: datetime, progress: Callable[[ResyncProgress], None] | None = None
) -> ResyncProgress:
    adapter = get_provider(provider)
    if provider == Provider.GOOGLE_PLAY:
        # Play keeps no notification history: re-read every purchase we know that may have moved.
        events: Iterable[ProviderEvent] = adapter.list_events(since=since, tokens=_play_tokens(since))
    else:
        events = adapter.list_events(since=since)
    state = ResyncProgress()
    for chunk in _chunks(events, CHUNK):
        state.seen += len(chunk)
        stored = webhook_store(events=chunk, raw_body="")
        for event_id, created in stored:
            if not created:
                continue
            state.new += 1
            try:
                event = webhook_event_apply(event_id=event_id)
            except Exception:
                state.failed += 1
                continue
            if event.status == "applied":
                state.applied += 1
            else:
                state.ignored += 1
        if progress:
            progress(state)
    return state

"""Provider-specific appliers: turn one stored webhook event into subscription and payment changes.

Each applier is ``apply(event) -> note`` and may raise ``EventIgnored`` (nothing to
do) or ``RetryableApplyError`` (try again later: the provider was unreachable, or an
event arrived before the one it depends on). Anything else is a permanent failure,
shown in the admin for replay.

An applier may also offer ``sync_snapshot(event) -> SubscriptionSnapshot | None``:
for an event whose whole effect is converging one subscription to a snapshot (no
payment, refund or provider call), the snapshot, so a worker can apply many such
events in one transaction (:func:`apply_together`). ``None`` means "apply it one at a
time with ``apply``". They reach the core's inbox through ``event_appliers``
(registered in subscriptions.apps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from monetization.models import WebhookEvent
from monetization.services.webhooks import EventApplier
from subscriptions.services.lifecycle import Cause
from subscriptions.services.provider_sync import SyncRequest, subscriptions_sync_from_snapshots

from . import app_store, google_play, stripe
from .common import sync_note


def apply_together(sync_snapshot: Callable, events: Sequence[WebhookEvent]) -> dict[int, str]:
    """Converge the subscriptions of the events that are snapshots alone, in bulk, in the events' order."""
    synced = [(event, sync_snapshot(event)) for event in events]
    synced = [(event, snapshot) for event, snapshot in synced if snapshot is not None]
    if not synced:
        return {}
    results = subscriptions_sync_from_snapshots(
        [
            SyncRequest(
                snapshot=snapshot, cause=Cause.provider_event(event.provider, event.event_id, reason=event.event_type)
            )
            for event, snapshot in synced
        ]
    )
    return {event.pk: sync_note(result) for (event, _snapshot), result in zip(synced, results, strict=True)}


EVENT_APPLIERS: dict[str, EventApplier] = {
    "stripe": EventApplier(apply=stripe.apply, apply_together=partial(apply_together, stripe.sync_snapshot)),
    "app_store": EventApplier(apply=app_store.apply, apply_together=partial(apply_together, app_store.sync_snapshot)),
    "google_play": EventApplier(apply=google_play.apply),
}

"""Provider-specific appliers: turn one stored webhook event into subscription and payment changes.

Each applier is ``apply(event) -> note`` and may raise :class:`EventIgnored`
(nothing to do) or :class:`RetryableApplyError` (try again later: the
provider was unreachable, or an event arrived before the one it depends on).
Anything else is a permanent failure, shown in the admin for replay.

An applier may also offer ``sync_snapshot(event) -> SubscriptionSnapshot | None``:
for an event whose whole effect is converging one subscription to a snapshot
(no payment, refund or provider call), the snapshot, so a worker can apply many
such events in one transaction (``webhook_events_apply_batch``). ``None`` means
"apply it one at a time with ``apply``".
"""

from __future__ import annotations


class EventIgnored(Exception):
    """The event is authentic but says nothing we act on."""


class RetryableApplyError(Exception):
    """Applying may succeed later."""


def applier_for(provider: str):
    from . import app_store, google_play, stripe

    return {"stripe": stripe.apply, "app_store": app_store.apply, "google_play": google_play.apply}[provider]


def is_relevant(provider: str, event_type: str) -> bool:
    """Whether an event type is worth a worker's time (others are stored as ignored)."""
    from . import app_store, google_play, stripe

    return {"stripe": stripe.relevant, "app_store": app_store.relevant, "google_play": google_play.relevant}[provider](
        event_type
    )


def sync_snapshot_for(provider: str):
    """The provider's ``sync_snapshot`` (see above), or one that always says "one at a time"."""
    from . import app_store, stripe

    return {"stripe": stripe.sync_snapshot, "app_store": app_store.sync_snapshot}.get(provider, _one_at_a_time)


def _one_at_a_time(event) -> None:
    return None


def sync_note(result) -> str:
    """The event's note for a subscription sync (shown in the admin's webhook inbox)."""
    sub = result.subscription
    return f"subscription {sub.pk} {sub.state}" + (" (older event)" if result.stale else "")

"""Provider-specific appliers: turn one stored webhook event into subscription and payment changes.

Each applier is ``apply(event) -> note`` and may raise :class:`EventIgnored`
(nothing to do) or :class:`RetryableApplyError` (try again later: the
provider was unreachable, or an event arrived before the one it depends on).
Anything else is a permanent failure, shown in the admin for replay.
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

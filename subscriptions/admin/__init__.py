"""Admin for the subscriptions app, one module per area."""

from . import catalog, growth, offerings, offers, overlaps, price_changes, subscriptions, win_back  # noqa: F401

"""Admin for the subscriptions app, one module per area."""

from . import catalog, growth, offers, overlaps, subscriptions  # noqa: F401

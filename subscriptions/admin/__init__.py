"""Admin for the subscriptions app, one module per area."""

from . import catalog, growth, offerings, overlaps, subscriptions  # noqa: F401

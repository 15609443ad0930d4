"""Admin for the subscriptions app, one module per area."""

from . import catalog, overlaps, subscriptions  # noqa: F401

"""Admin for the subscriptions app, one module per area."""

from . import catalog, subscriptions  # noqa: F401

"""Admin for the subscriptions app, one module per area."""

from . import catalog, growth, subscriptions  # noqa: F401

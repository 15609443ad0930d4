"""Admin for the subscriptions app, one module per area (catalog here; subscriptions and grants beside it)."""

from . import catalog  # noqa: F401

from . import subscriptions  # noqa

from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "subscriptions"

    def ready(self):
        from .entitlement_sources import grant_entitlements, subscription_entitlements
        from .entitlements import register_source

        register_source(subscription_entitlements)
        register_source(grant_entitlements)

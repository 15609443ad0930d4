from django.apps import AppConfig


class CreatorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "creators"

    def ready(self):
        from monetization.selectors_support import register_customer_panel
        from monetization.services.payments import register_payment_hook

        from .selectors import customer_creator_panel
        from .services.creator_subscriptions import creator_subscription_payment_hook

        # A fan's payment of a creator-subscription plan posts the creator's share as it is recorded.
        register_payment_hook(creator_subscription_payment_hook, name="creators.subscription_share")
        register_customer_panel("Creator", customer_creator_panel)

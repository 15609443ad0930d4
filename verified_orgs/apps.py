from django.apps import AppConfig


class VerifiedOrgsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verified_orgs"
    verbose_name = "Verified organizations"

    def ready(self):
        from django_fsm.signals import post_transition

        from subscriptions.entitlements import register_source
        from subscriptions.models import Subscription

        from .entitlement_sources import invalidate_on_subscription_transition, organization_entitlements

        register_source(organization_entitlements)
        from monetization.selectors_support import register_customer_panel

        from .selectors import customer_panel_organizations

        register_customer_panel("Organizations", customer_panel_organizations)
        post_transition.connect(
            invalidate_on_subscription_transition, sender=Subscription, dispatch_uid="verified_orgs.sub_transition"
        )

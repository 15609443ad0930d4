from django.apps import AppConfig


class VerifiedOrgsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verified_orgs"
    verbose_name = "Verified organizations"

    def ready(self):
        from django_fsm.signals import post_transition

        from monetization.selectors_support import register_customer_panel
        from monetization.services.payments import register_payment_hook
        from subscriptions.entitlements import register_source
        from subscriptions.models import Subscription
        from subscriptions.services.lifecycle import register_state_hook

        from .entitlement_sources import invalidate_on_subscription_transition, organization_entitlements
        from .selectors import customer_organizations_panel
        from .services.billing import org_renewal_from_payment
        from .services.dunning import orgs_follow_subscriptions

        register_source(organization_entitlements)
        post_transition.connect(
            invalidate_on_subscription_transition, sender=Subscription, dispatch_uid="verified_orgs.sub_transition"
        )
        # The org follows its subscription's state (suspension for non-payment, reinstatement),
        # and a provider's payment of an org subscription is that period's charge.
        register_state_hook(orgs_follow_subscriptions, name="verified_orgs.follow_subscription")
        register_payment_hook(org_renewal_from_payment, name="verified_orgs.renewal_from_payment")
        register_customer_panel("Verified organizations", customer_organizations_panel)

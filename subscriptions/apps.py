from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "subscriptions"

    def ready(self):
        # What subscriptions plugs into the money core (and offers the apps above it in turn:
        # entitlement_sources, state_hooks, payment_hooks).
        from monetization.admin import customer_countries, distinct_values
        from monetization.admin_support import customer_actions
        from monetization.api.staff import customer_summary_parts
        from monetization.demo import DemoStep, demo_steps
        from monetization.providers import PACKAGES
        from monetization.roles import role_shares
        from monetization.selectors_support import customer_lookups, customer_panels
        from monetization.services.outbox import outbox_entitlements
        from monetization.services.refunds import refund_succeeded_hooks
        from monetization.services.webhooks import event_appliers

        from . import roles
        from .admin import support
        from .api.staff import CUSTOMER_SUMMARY
        from .entitlement_sources import grant_entitlements, subscription_entitlements
        from .entitlements import entitlement_sources
        from .models import Price
        from .outbox_events import customer_entitlements, sweep_events_write
        from .selectors import customers_by_provider_subscription_id
        from .services.lifecycle import state_hooks
        from .services.payments import subscription_refund_access
        from .services.provider_events import EVENT_APPLIER
        from .services.reconcile import reconcilers
        from .services.reconcile_stores import app_store_reconcile, google_play_reconcile
        from .services.reconcile_stripe import stripe_reconcile

        role_shares.register(self.label, roles.ROLE_PERMISSIONS)
        entitlement_sources.register("subscriptions.subscription", subscription_entitlements)
        entitlement_sources.register("subscriptions.grant", grant_entitlements)
        for provider in PACKAGES:  # one applier, provider-agnostic: the provider packages read the events
            event_appliers.register(provider, EVENT_APPLIER)
        outbox_entitlements.register("subscriptions", customer_entitlements)
        state_hooks.register("subscriptions.outbox_sweep", sweep_events_write)
        refund_succeeded_hooks.register("subscriptions.refund_access", subscription_refund_access)
        reconcilers.register("stripe", stripe_reconcile)
        reconcilers.register("app_store", app_store_reconcile)
        reconcilers.register("google_play", google_play_reconcile)
        customer_panels.register("subscriptions", support.PANEL)
        for op, action in support.CUSTOMER_ACTIONS.items():
            customer_actions.register(op, action)
        customer_lookups.register("subscriptions.provider_subscription_id", customers_by_provider_subscription_id)
        customer_summary_parts.register("subscriptions", CUSTOMER_SUMMARY)
        customer_countries.register("subscriptions.prices", lambda: distinct_values(Price, "country"))
        demo_steps.register("subscriptions.catalog", DemoStep(10, "subscriptions.demo.catalog"))
        demo_steps.register("subscriptions.subscriptions", DemoStep(30, "subscriptions.demo.subscriptions"))
        demo_steps.register("subscriptions.support", DemoStep(61, "subscriptions.demo.support"))
        demo_steps.register("subscriptions.growth", DemoStep(62, "subscriptions.demo.growth"))

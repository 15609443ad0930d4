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
        from monetization.selectors_support import customer_lookups, customer_panels, customer_summary_facts
        from monetization.services.customer_merge import customer_movers
        from monetization.services.outbox import outbox_entitlements
        from monetization.services.refund_preview import refund_preview_parts
        from monetization.services.refunds import refund_succeeded_hooks
        from monetization.services.webhooks import event_appliers

        from . import roles
        from .admin import support
        from .api.staff import CUSTOMER_SUMMARY
        from .entitlement_sources import grant_entitlements, subscription_entitlements
        from .entitlements import entitlement_sources
        from .models import Price
        from .outbox_events import customer_entitlements
        from .selectors import customers_by_provider_subscription_id
        from .services.payments import subscription_refund_access
        from .services.provider_events import EVENT_APPLIER
        from .services.reconcile import reconcilers
        from .services.reconcile_stores import app_store_reconcile, google_play_reconcile
        from .services.reconcile_stripe import stripe_reconcile
        from .services.refund_preview import subscription_refund_preview
        from .services.transfers import subscriptions_move

        role_shares.register(self.label, roles.ROLE_PERMISSIONS)
        customer_movers.register("subscriptions", subscriptions_move)
        entitlement_sources.register("subscriptions.subscription", subscription_entitlements)
        entitlement_sources.register("subscriptions.grant", grant_entitlements)
        for provider in PACKAGES:  # one applier, provider-agnostic: the provider packages read the events
            event_appliers.register(provider, EVENT_APPLIER)
        outbox_entitlements.register("subscriptions", customer_entitlements)
        refund_succeeded_hooks.register("subscriptions.refund_access", subscription_refund_access)
        refund_preview_parts.register("subscription", subscription_refund_preview)
        reconcilers.register("stripe", stripe_reconcile)
        reconcilers.register("app_store", app_store_reconcile)
        reconcilers.register("google_play", google_play_reconcile)
        customer_panels.register("subscriptions", support.PANEL)
        customer_summary_facts.register("subscriptions.current_plan", support.summary_facts)
        for op, action in support.CUSTOMER_ACTIONS.items():
            customer_actions.register(op, action)
        customer_lookups.register("subscriptions.provider_subscription_id", customers_by_provider_subscription_id)
        customer_summary_parts.register("subscriptions", CUSTOMER_SUMMARY)
        customer_countries.register("subscriptions.prices", lambda: distinct_values(Price, "country"))
        # Any edit of what an offerings body shows forgets the cached bodies on commit.
        from django.db.models.signals import post_delete, post_save

        from . import models
        from .services.offerings import SHAPES_OFFERINGS, offerings_changed

        for name in SHAPES_OFFERINGS:
            sender = getattr(models, name)
            post_save.connect(offerings_changed, sender=sender, dispatch_uid=f"offerings.{name}.save")
            post_delete.connect(offerings_changed, sender=sender, dispatch_uid=f"offerings.{name}.delete")
        # Its tables, provider ids and subscription cancellation for personal data requests.
        from . import personal_data

        personal_data.register()
        demo_steps.register("subscriptions.catalog", DemoStep(10, "subscriptions.demo.catalog"))
        demo_steps.register("subscriptions.subscriptions", DemoStep(30, "subscriptions.demo.subscriptions"))
        demo_steps.register("subscriptions.support", DemoStep(61, "subscriptions.demo.support"))
        demo_steps.register("subscriptions.overlaps", DemoStep(63, "subscriptions.demo.overlaps"))
        # Last: the snapshots sum up what every step before made.
        demo_steps.register("subscriptions.finance", DemoStep(90, "subscriptions.demo.finance"))
        demo_steps.register("subscriptions.growth", DemoStep(62, "subscriptions.demo.growth"))

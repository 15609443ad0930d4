from django.apps import AppConfig


class CreatorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "creators"

    def ready(self):
        from monetization.demo import DemoStep, demo_steps
        from monetization.providers.stripe import CONNECT
        from monetization.roles import role_shares
        from monetization.selectors_support import CustomerPanel, customer_panels
        from monetization.services.customer_merge import customer_movers
        from monetization.services.dispute_hooks import dispute_lost_hooks
        from monetization.services.refund_preview import refund_preview_parts
        from monetization.services.refunds import refund_succeeded_hooks
        from monetization.services.webhooks import EventApplier, event_appliers
        from subscriptions.services.payments import payment_hooks

        from . import roles
        from .selectors import customer_creator_panel
        from .services.clawbacks import (
            creator_dispute_clawback_hook,
            creator_refund_clawback_hook,
            creator_refund_preview,
        )
        from .services.connect import connect_stored_event_apply
        from .services.creator_subscriptions import creator_subscription_payment_hook
        from .services.customer_merge import creators_move

        role_shares.register(self.label, roles.ROLE_PERMISSIONS)
        customer_movers.register("creators", creators_move)
        demo_steps.register("creators.creators", DemoStep(50, "creators.demo.creators"))
        # A fan's payment of a creator-subscription plan posts the creator's share as it is recorded.
        payment_hooks.register("creators.subscription_share", creator_subscription_payment_hook)
        # A refund or lost dispute of a fan payment takes the creator's share back (clawback).
        refund_succeeded_hooks.register("creators.share_clawback", creator_refund_clawback_hook)
        refund_preview_parts.register("creator", creator_refund_preview)
        dispute_lost_hooks.register("creators.share_clawback", creator_dispute_clawback_hook)
        # Stripe Connect events (account status, reversed transfers, failed bank payouts) from the inbox.
        event_appliers.register(CONNECT, EventApplier(apply=connect_stored_event_apply))
        customer_panels.register("creators.creator", CustomerPanel(title="Creator", load=customer_creator_panel))
        # What creators' tables hold on a person, for export and erasure.
        from . import personal_data

        personal_data.register()

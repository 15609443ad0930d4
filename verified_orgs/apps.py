from django.apps import AppConfig


class VerifiedOrgsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verified_orgs"
    verbose_name = "Verified organizations"

    def ready(self):
        from django_fsm.signals import post_transition

        from monetization.demo import DemoStep, demo_steps
        from monetization.roles import role_shares
        from monetization.selectors_support import CustomerPanel, customer_panels
        from monetization.services.customer_merge import customer_movers
        from monetization.services.refund_preview import refund_preview_parts
        from monetization.services.refunds import refund_succeeded_hooks
        from subscriptions.entitlements import entitlement_sources
        from subscriptions.models import Subscription
        from subscriptions.services.lifecycle import state_hooks
        from subscriptions.services.payments import invoice_hooks, payment_hooks
        from subscriptions.services.provider_sync import pushed_quantities

        from . import roles
        from .entitlement_sources import invalidate_on_subscription_transition, organization_entitlements
        from .selectors import customer_organizations_panel
        from .services.billing import (
            org_credit_note_for_refund,
            org_invoice_from_provider,
            org_invoice_paid_from_payment,
            org_seat_counts_since,
        )
        from .services.customer_merge import organizations_move
        from .services.dunning import orgs_follow_subscriptions
        from .services.refund_preview import org_refund_preview

        role_shares.register(self.label, roles.ROLE_PERMISSIONS)
        customer_movers.register("verified_orgs", organizations_move)
        demo_steps.register("verified_orgs.organizations", DemoStep(40, "verified_orgs.demo.organizations"))
        entitlement_sources.register("verified_orgs.organization", organization_entitlements)
        post_transition.connect(
            invalidate_on_subscription_transition, sender=Subscription, dispatch_uid="verified_orgs.sub_transition"
        )
        # The org follows its subscription's state (suspension for non-payment, reinstatement),
        # and a provider's payment of an org subscription is that period's charge.
        state_hooks.register("verified_orgs.follow_subscription", orgs_follow_subscriptions)
        payment_hooks.register("verified_orgs.renewal_from_payment", org_invoice_paid_from_payment)
        invoice_hooks.register("verified_orgs.invoice_from_provider", org_invoice_from_provider)
        pushed_quantities.register("verified_orgs.seat_ledger", org_seat_counts_since)
        refund_succeeded_hooks.register("verified_orgs.credit_note", org_credit_note_for_refund)
        refund_preview_parts.register("organization", org_refund_preview)
        # What organizations hold on a person, for export and erasure.
        from . import personal_data

        personal_data.register()
        customer_panels.register(
            "verified_orgs.organizations",
            CustomerPanel(title="Verified organizations", load=customer_organizations_panel),
        )

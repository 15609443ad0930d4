from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MonetizationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monetization"
    verbose_name = "Money core"

    def ready(self):
        from . import (  # noqa: F401  (admins register themselves)
            admin_merges,
            admin_outbox,
            admin_privacy,
            admin_reconciliation,
            admin_support,
            admin_webhooks,
            roles,
        )
        from .demo import DemoStep, demo_steps

        roles.role_shares.register(self.label, roles.ROLE_PERMISSIONS)
        demo_steps.register("monetization.customers", DemoStep(20, "monetization.demo.customers"))
        # Runs last but one, on the others' data; subscriptions.support follows it.
        demo_steps.register("monetization.support", DemoStep(60, "monetization.demo.support"))
        demo_steps.register("monetization.privacy", DemoStep(62, "monetization.demo.privacy"))
        # Keep the staff groups' permissions exactly as the roles say after every migrate,
        # including permissions of models added by later migrations.
        post_migrate.connect(roles.sync_roles_after_migrate, dispatch_uid="monetization.sync_roles")

        # Refunds and lost disputes of a multi-month payment come out of its unrecognized revenue first.
        from .services.dispute_hooks import dispute_lost_hooks
        from .services.refunds import refund_succeeded_hooks
        from .services.revenue_recognition import deferral_dispute_lost_hook, deferral_refund_hook

        refund_succeeded_hooks.register("monetization.deferred_revenue", deferral_refund_hook)
        dispute_lost_hooks.register("monetization.deferred_revenue", deferral_dispute_lost_hook)

        # Personal data requests: the core's own tables in the registry that export and erasure read.
        from .personal_data import register_core_sources

        register_core_sources()

        # Support console: customer page, search and refund approvals in the admin.
        admin_support.install()

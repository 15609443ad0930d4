from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MonetizationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "monetization"
    verbose_name = "Money core"

    def ready(self):
        from . import admin_webhooks, roles  # noqa: F401  (admin_webhooks registers the inbox admin)

        # Keep the staff groups' permissions exactly as roles.py says after every migrate,
        # including permissions of models added by later migrations.
        post_migrate.connect(roles.sync_roles_after_migrate, dispatch_uid="monetization.sync_roles")

        # Support console (issue 4): customer page, search and refund approvals in the admin.
        from . import admin_support

        admin_support.install()

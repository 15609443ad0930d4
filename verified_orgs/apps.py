from django.apps import AppConfig


class VerifiedOrgsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verified_orgs"
    verbose_name = "Verified organizations"

    def ready(self):
        from subscriptions.entitlements import register_source

        from .entitlement_sources import organization_entitlements

        register_source(organization_entitlements)

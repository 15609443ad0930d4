from django.apps import AppConfig


class VerifiedOrgsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "verified_orgs"

from django.apps import AppConfig


class CreatorsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "creators"

    def ready(self):
        from monetization.selectors_support import register_customer_panel

        from .selectors import customer_panel_creator

        register_customer_panel("Creator", customer_panel_creator)

from django.urls import include, path

from . import webhooks

urlpatterns: list = [
    path("webhooks/stripe", webhooks.stripe_webhook, name="webhook-stripe"),
    path("webhooks/app-store", webhooks.app_store_webhook, name="webhook-app-store"),
    path("webhooks/google-play", webhooks.google_play_webhook, name="webhook-google-play"),
    path("staff/", include("monetization.api.staff_urls")),
]

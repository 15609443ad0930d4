from django.urls import include, path

from . import events, webhooks

urlpatterns: list = [
    path("webhooks/stripe", webhooks.stripe_webhook, name="webhook-stripe"),
    path("webhooks/stripe-connect", webhooks.stripe_connect_webhook, name="webhook-stripe-connect"),
    path("webhooks/app-store", webhooks.app_store_webhook, name="webhook-app-store"),
    path("webhooks/google-play", webhooks.google_play_webhook, name="webhook-google-play"),
    path("staff/", include("monetization.api.staff_urls")),
    path("events", events.EventsView.as_view(), name="events"),
    path("events/catalogue", events.EventCatalogueView.as_view(), name="events-catalogue"),
]

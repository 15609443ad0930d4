from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backoffice import health
from backoffice.admin_site import StaffAdminSite
from backoffice.metrics import metrics
from monetization.views import health as database_health

# The default site (every app's admin.py registered on it) with the two-factor sign-in.
admin.site.__class__ = StaffAdminSite

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("monetization.api.urls")),
    path("api/v1/", include("subscriptions.api.urls")),
    path("healthz", database_health, name="health"),
    path("healthz/live", health.live, name="health-live"),
    path("healthz/ready", health.ready, name="health-ready"),
    path("metrics", metrics, name="metrics"),
    path("api/v1/", include("verified_orgs.api.urls")),
    path("api/v1/", include("creators.api.urls")),
]

handler404 = "monetization.views.not_found"
handler500 = "monetization.views.server_error"

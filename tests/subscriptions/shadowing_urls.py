"""A URLconf where a pattern tried before the entitlements route may answer some of its paths."""

from django.http import HttpResponse
from django.urls import path

from backoffice.urls import urlpatterns as real_urlpatterns

urlpatterns = [
    path("api/v1/customers/me/entitlements", lambda request: HttpResponse("mine")),
    *real_urlpatterns,
]

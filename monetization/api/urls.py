from django.urls import include, path

urlpatterns: list = []

# --- Support console (issue 4): staff API ---
urlpatterns += [path("staff/", include("monetization.api.staff_urls"))]

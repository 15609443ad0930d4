from django.urls import path

from . import views

urlpatterns = [
    path("customers/<str:external_id>/entitlements", views.EntitlementsView.as_view(), name="customer-entitlements"),
    path("catalog", views.CatalogView.as_view(), name="catalog"),
]

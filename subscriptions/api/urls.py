from django.urls import path, re_path

from . import growth, purchases, staff, views

urlpatterns = [
    path("customers/<str:external_id>/entitlements", views.EntitlementsView.as_view(), name="customer-entitlements"),
    path(
        "customers/<str:external_id>/experiments/<slug:key>",
        growth.ExperimentArmView.as_view(),
        name="customer-experiment-arm",
    ),
    path("catalog", views.CatalogView.as_view(), name="catalog"),
    path("promo-codes/redeem", growth.PromoCodeRedeemView.as_view(), name="promo-code-redeem"),
    path("purchases", purchases.PurchaseView.as_view(), name="purchases"),
    path("staff/grants", staff.GrantCreateView.as_view(), name="staff-grants"),
    path("staff/grants/<int:pk>/revoke", staff.GrantRevokeView.as_view(), name="staff-grant-revoke"),
    re_path(
        r"^staff/subscriptions/(?P<pk>[0-9]+)/(?P<action>cancel|extend|pause|resume|revoke)$",
        staff.SubscriptionActionView.as_view(),
        name="staff-subscription-action",
    ),
]

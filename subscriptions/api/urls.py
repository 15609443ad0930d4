from django.urls import path, re_path

from . import purchases, staff, staff_metrics, views

urlpatterns = [
    path("customers/<str:external_id>/entitlements", views.EntitlementsView.as_view(), name="customer-entitlements"),
    path("catalog", views.CatalogView.as_view(), name="catalog"),
    path("purchases", purchases.PurchaseView.as_view(), name="purchases"),
    path("staff/grants", staff.GrantCreateView.as_view(), name="staff-grants"),
    path("staff/grants/<int:pk>/revoke", staff.GrantRevokeView.as_view(), name="staff-grant-revoke"),
    path("staff/metrics/mrr", staff_metrics.MrrMetricsView.as_view(), name="staff-metrics-mrr"),
    path("staff/metrics/movement", staff_metrics.MovementMetricsView.as_view(), name="staff-metrics-movement"),
    path("staff/metrics/summary", staff_metrics.SummaryMetricsView.as_view(), name="staff-metrics-summary"),
    re_path(
        r"^staff/subscriptions/(?P<pk>[0-9]+)/(?P<action>cancel|extend|pause|resume|revoke)$",
        staff.SubscriptionActionView.as_view(),
        name="staff-subscription-action",
    ),
]

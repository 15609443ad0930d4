from django.urls import path, re_path

from . import customer_center, growth, offerings, purchases, staff, staff_experiments, staff_metrics, views

urlpatterns = [
    path("customers/<str:external_id>/entitlements", views.EntitlementsView.as_view(), name="customer-entitlements"),
    path(
        "customers/<str:external_id>/experiments/<slug:key>",
        growth.ExperimentArmView.as_view(),
        name="customer-experiment-arm",
    ),
    path("catalog", views.CatalogView.as_view(), name="catalog"),
    path("offerings", offerings.OfferingsView.as_view(), name="offerings"),
    path("promo-codes/redeem", growth.PromoCodeRedeemView.as_view(), name="promo-code-redeem"),
    path("purchases", purchases.PurchaseView.as_view(), name="purchases"),
    path(
        "customer-center/subscriptions",
        customer_center.CustomerCenterSubscriptionsView.as_view(),
        name="customer-center-subscriptions",
    ),
    path(
        "customer-center/subscriptions/<int:pk>/cancel",
        customer_center.CustomerCenterCancelView.as_view(),
        name="customer-center-subscription-cancel",
    ),
    path(
        "customer-center/subscriptions/<int:pk>/switch-plan",
        customer_center.CustomerCenterSwitchPlanView.as_view(),
        name="customer-center-subscription-switch-plan",
    ),
    path(
        "customer-center/billing-portal",
        customer_center.CustomerCenterBillingPortalView.as_view(),
        name="customer-center-billing-portal",
    ),
    path("staff/grants", staff.GrantCreateView.as_view(), name="staff-grants"),
    path("staff/grants/<int:pk>/revoke", staff.GrantRevokeView.as_view(), name="staff-grant-revoke"),
    path(
        "staff/experiments/<int:pk>/readout",
        staff_experiments.ExperimentReadoutView.as_view(),
        name="staff-experiment-readout",
    ),
    path("staff/metrics/mrr", staff_metrics.MrrMetricsView.as_view(), name="staff-metrics-mrr"),
    path("staff/metrics/movement", staff_metrics.MovementMetricsView.as_view(), name="staff-metrics-movement"),
    path("staff/metrics/summary", staff_metrics.SummaryMetricsView.as_view(), name="staff-metrics-summary"),
    re_path(
        r"^staff/subscriptions/(?P<pk>[0-9]+)/(?P<action>cancel|extend|pause|resume|revoke)$",
        staff.SubscriptionActionView.as_view(),
        name="staff-subscription-action",
    ),
]

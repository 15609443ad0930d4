from django.urls import path, re_path

from . import staff

urlpatterns = [
    path("customers/<str:external_id>", staff.CustomerSummaryView.as_view(), name="staff-customer"),
    path("refunds", staff.RefundListCreateView.as_view(), name="staff-refunds"),
    path("refunds/<int:pk>/approve", staff.RefundApproveView.as_view(), name="staff-refund-approve"),
    path("refunds/<int:pk>/reject", staff.RefundRejectView.as_view(), name="staff-refund-reject"),
    path("refunds/<int:pk>/retry", staff.RefundRetryView.as_view(), name="staff-refund-retry"),
    path("grants", staff.GrantCreateView.as_view(), name="staff-grants"),
    path("grants/<int:pk>/revoke", staff.GrantRevokeView.as_view(), name="staff-grant-revoke"),
    re_path(
        r"^subscriptions/(?P<pk>[0-9]+)/(?P<action>cancel|extend|pause|resume|revoke)$",
        staff.SubscriptionActionView.as_view(),
        name="staff-subscription-action",
    ),
    path("audit-events", staff.AuditEventListView.as_view(), name="staff-audit-events"),
    path("audit-events/<int:pk>", staff.AuditEventDetailView.as_view(), name="staff-audit-event"),
]

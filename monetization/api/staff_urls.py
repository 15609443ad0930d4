from django.urls import path

from . import staff, staff_merges, staff_privacy

urlpatterns = [
    path("customers/<str:external_id>", staff.CustomerSummaryView.as_view(), name="staff-customer"),
    path(
        "customers/<str:external_id>/personal-data",
        staff_privacy.CustomerPersonalDataView.as_view(),
        name="staff-customer-personal-data",
    ),
    path("erasure-requests", staff_privacy.ErasureRequestListCreateView.as_view(), name="staff-erasure-requests"),
    path(
        "erasure-requests/<int:pk>/start",
        staff_privacy.ErasureRequestStartView.as_view(),
        name="staff-erasure-request-start",
    ),
    path(
        "erasure-requests/<int:pk>/execute",
        staff_privacy.ErasureRequestExecuteView.as_view(),
        name="staff-erasure-request-execute",
    ),
    path(
        "erasure-requests/<int:pk>/reject",
        staff_privacy.ErasureRequestRejectView.as_view(),
        name="staff-erasure-request-reject",
    ),
    path("refunds", staff.RefundListCreateView.as_view(), name="staff-refunds"),
    path("refunds/preview", staff.RefundPreviewView.as_view(), name="staff-refunds-preview"),
    path("refunds/<int:pk>/approve", staff.RefundApproveView.as_view(), name="staff-refund-approve"),
    path("refunds/<int:pk>/reject", staff.RefundRejectView.as_view(), name="staff-refund-reject"),
    path("refunds/<int:pk>/retry", staff.RefundRetryView.as_view(), name="staff-refund-retry"),
    path("customer-merges/preview", staff_merges.CustomerMergePreviewView.as_view(), name="staff-merge-preview"),
    path("customer-merges", staff_merges.CustomerMergeCreateView.as_view(), name="staff-merges"),
    path(
        "customer-merges/<int:pk>/approve", staff_merges.CustomerMergeApproveView.as_view(), name="staff-merge-approve"
    ),
    path("customer-merges/<int:pk>/reject", staff_merges.CustomerMergeRejectView.as_view(), name="staff-merge-reject"),
    path("webhook-events/<int:pk>/replay", staff.WebhookEventReplayView.as_view(), name="staff-webhook-event-replay"),
    path("audit-events", staff.AuditEventListView.as_view(), name="staff-audit-events"),
    path("audit-events/<int:pk>", staff.AuditEventDetailView.as_view(), name="staff-audit-event"),
]

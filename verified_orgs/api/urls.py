from django.urls import path, re_path

from . import staff, views

urlpatterns = [
    path("orgs/<str:handle>/affiliates", views.AffiliatesView.as_view(), name="org-affiliates"),
    path("orgs/<str:handle>/affiliates/<int:pk>", views.AffiliateView.as_view(), name="org-affiliate"),
    path("orgs/<str:handle>/subscription", views.SubscriptionView.as_view(), name="org-subscription"),
    path("orgs/<str:handle>/invoices", views.InvoicesView.as_view(), name="org-invoices"),
    path("orgs/<str:handle>/invoices/<str:number>/pdf", views.InvoicePdfView.as_view(), name="org-invoice-pdf"),
    path("org-invitations/accept", views.AcceptInvitationView.as_view(), name="org-invitation-accept"),
    re_path(
        r"^staff/organizations/(?P<pk>[0-9]+)/(?P<action>start_review|verify|reject|suspend|reinstate|cancel)$",
        staff.OrganizationActionView.as_view(),
        name="staff-organization-action",
    ),
    re_path(
        r"^staff/org-invoices/(?P<pk>[0-9]+)/(?P<action>void|mark_uncollectible)$",
        staff.OrgInvoiceActionView.as_view(),
        name="staff-org-invoice-action",
    ),
]

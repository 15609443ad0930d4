from django.urls import path

from . import views

urlpatterns = [
    path("orgs/<str:handle>/affiliates", views.AffiliatesView.as_view(), name="org-affiliates"),
    path("orgs/<str:handle>/affiliates/<int:pk>", views.AffiliateView.as_view(), name="org-affiliate"),
    path("orgs/<str:handle>/subscription", views.SubscriptionView.as_view(), name="org-subscription"),
    path("orgs/<str:handle>/invoices", views.InvoicesView.as_view(), name="org-invoices"),
    path("orgs/<str:handle>/invoices/<str:number>/pdf", views.InvoicePdfView.as_view(), name="org-invoice-pdf"),
    path("org-invitations/accept", views.AcceptInvitationView.as_view(), name="org-invitation-accept"),
]

from django.urls import path

from . import views

urlpatterns = [
    path("creators/engagement", views.EngagementIngestView.as_view(), name="creators-engagement"),
    path("creators/me/earnings", views.CreatorEarningsView.as_view(), name="creators-earnings"),
    path("creators/me/payouts", views.CreatorPayoutsView.as_view(), name="creators-payouts"),
    path("creators/me/eligibility", views.CreatorEligibilityView.as_view(), name="creators-eligibility"),
    path(
        "creators/me/connect/onboarding-link",
        views.CreatorConnectOnboardingLinkView.as_view(),
        name="creators-connect-onboarding-link",
    ),
]

from django.urls import path, re_path

from . import staff, views

urlpatterns = [
    path("creators/engagement", views.EngagementIngestView.as_view(), name="creators-engagement"),
    path("creators/me/earnings", views.CreatorEarningsView.as_view(), name="creators-earnings"),
    path("creators/me/payouts", views.CreatorPayoutsView.as_view(), name="creators-payouts"),
    path("creators/me/eligibility", views.CreatorEligibilityView.as_view(), name="creators-eligibility"),
    re_path(
        r"^staff/creators/(?P<pk>[0-9]+)/(?P<action>suspend|reinstate|ban|mark_eligible|mark_ineligible|evaluate)$",
        staff.CreatorActionView.as_view(),
        name="staff-creator-action",
    ),
    path("staff/payouts/<int:pk>/holds", staff.PayoutHoldPlaceView.as_view(), name="staff-payout-hold"),
    path("staff/payouts/<int:pk>/retry", staff.PayoutRetryView.as_view(), name="staff-payout-retry"),
    path("staff/payout-holds/<int:pk>/lift", staff.PayoutHoldLiftView.as_view(), name="staff-payout-hold-lift"),
    path("staff/cycles", staff.CycleOpenView.as_view(), name="staff-cycles"),
    path("staff/cycles/<int:pk>/dry-run", staff.CycleDryRunView.as_view(), name="staff-cycle-dry-run"),
    re_path(
        r"^staff/cycles/(?P<pk>[0-9]+)/(?P<action>compute|submit|approve|reject|reopen|pay|close)$",
        staff.CycleActionView.as_view(),
        name="staff-cycle-action",
    ),
    path(
        "creators/me/connect/onboarding-link",
        views.CreatorConnectOnboardingLinkView.as_view(),
        name="creators-connect-onboarding-link",
    ),
]

"""What each staff role may do with revenue sharing (merged by monetization.roles.sync_roles)."""

_VIEW = [
    "creators.view_creatoraccount",
    "creators.view_payoutprofile",
    "creators.view_creatorstats",
    "creators.view_eligibilitydecision",
    "creators.view_revenuesharecycle",
    "creators.view_creatorearning",
    "creators.view_payout",
    "creators.view_payouthold",
    "creators.view_creatorsubscriptionshare",
]

ROLE_PERMISSIONS = {
    "Support": list(_VIEW),
    "Finance": [
        *_VIEW,
        "creators.add_revenuesharecycle",
        "creators.change_revenuesharecycle",
        "creators.compute_cycle",
        "creators.approve_cycle",
        "creators.export_payouts",
    ],
    "Compliance": [
        *_VIEW,
        "creators.change_creatoraccount",
        "creators.review_eligibility",
        "creators.suspend_creator",
        "creators.manage_holds",
        "creators.add_payouthold",
        "creators.change_payouthold",
    ],
}

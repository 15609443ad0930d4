"""Staff roles' share of verified organizations (merged by monetization.roles.sync_roles)."""

ROLE_PERMISSIONS: dict[str, list[str]] = {
    "Compliance": [
        "verified_orgs.view_organization",
        "verified_orgs.change_organization",
        "verified_orgs.view_reviewqueueitem",
        "verified_orgs.verify_organization",
        "verified_orgs.reject_organization",
        "verified_orgs.suspend_organization",
        "verified_orgs.reinstate_organization",
        "verified_orgs.view_organizationadmin",
        "verified_orgs.view_verificationapplication",
        "verified_orgs.change_verificationapplication",
        "verified_orgs.view_affiliation",
        "verified_orgs.view_seatledgerentry",
        "verified_orgs.view_orginvoice",
        "verified_orgs.view_orginvoiceline",
    ],
    "Support": [
        "verified_orgs.view_organization",
        "verified_orgs.view_organizationadmin",
        "verified_orgs.view_verificationapplication",
        "verified_orgs.view_affiliation",
        "verified_orgs.view_seatledgerentry",
    ],
    "Finance": [
        "verified_orgs.view_organization",
        "verified_orgs.view_orginvoice",
        "verified_orgs.manage_orginvoice",
        "verified_orgs.view_orginvoiceline",
        "verified_orgs.view_seatledgerentry",
    ],
}

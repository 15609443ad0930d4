"""The subscriptions app's share of the staff roles (merged by monetization.roles.sync_roles).

Support looks up, grants, cancels, extends, pauses and resumes; Finance sees;
Compliance revokes (subscriptions and grants). Every role reads the catalog
(support answers "what does Premium include, what does it cost in Brazil");
nobody but a superuser changes it: what we sell and at what price is a
product decision, not a support action.
"""

from monetization.roles import COMPLIANCE, FINANCE, SUPPORT

_VIEW = [
    "subscriptions.view_subscription",
    "subscriptions.view_dunningattempt",
    "subscriptions.view_grant",
    "subscriptions.view_product",
    "subscriptions.view_entitlement",
    "subscriptions.view_plan",
    "subscriptions.view_sku",
    "subscriptions.view_price",
    "subscriptions.view_experiment",
    "subscriptions.view_experimentarm",
    "subscriptions.view_promocode",
    "subscriptions.view_promoredemption",
    "subscriptions.view_offering",
    "subscriptions.view_offeringpackage",
    "subscriptions.view_offeringcountry",
    "subscriptions.view_productfamily",
    "subscriptions.view_introductoryoffer",
    "subscriptions.view_introductoryofferuse",
    "subscriptions.view_winbackrule",
    "subscriptions.view_winbacktarget",
    "subscriptions.view_pricechange",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    SUPPORT: [
        *_VIEW,
        "subscriptions.grant_entitlement",
        "subscriptions.cancel_subscription",
        "subscriptions.extend_subscription",
        "subscriptions.pause_subscription",
        "subscriptions.resume_subscription",
        # The two-platform queue: Support sees it and closes its cases.
        "subscriptions.view_overlapcase",
        "subscriptions.decide_overlapcase",
        # Support and product staff edit the paywalls (offerings); each edit is audited.
        "subscriptions.add_offering",
        "subscriptions.change_offering",
        "subscriptions.add_offeringpackage",
        "subscriptions.change_offeringpackage",
        "subscriptions.delete_offeringpackage",
        "subscriptions.add_offeringcountry",
        "subscriptions.change_offeringcountry",
        "subscriptions.delete_offeringcountry",
    ],
    FINANCE: [*_VIEW],
    COMPLIANCE: [
        *_VIEW,
        "subscriptions.revoke_grant",
        "subscriptions.revoke_subscription",
    ],
}

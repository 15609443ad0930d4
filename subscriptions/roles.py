"""The subscriptions app's share of the staff roles (merged by monetization.roles.sync_roles)."""

ROLE_PERMISSIONS: dict[str, list[str]] = {"Support": [], "Finance": [], "Compliance": []}


# --- Support console (issue 4): staff actions on subscriptions and grants ------
ROLE_PERMISSIONS["Support"] += [
    "subscriptions.view_subscription",
    "subscriptions.view_grant",
    "subscriptions.view_product",
    "subscriptions.view_entitlement",
    "subscriptions.view_plan",
    "subscriptions.grant_entitlement",
    "subscriptions.cancel_subscription",
    "subscriptions.extend_subscription",
    "subscriptions.pause_subscription",
]
ROLE_PERMISSIONS["Finance"] += [
    "subscriptions.view_subscription",
    "subscriptions.view_grant",
]
ROLE_PERMISSIONS["Compliance"] += [
    "subscriptions.view_subscription",
    "subscriptions.view_grant",
    "subscriptions.revoke_grant",
    "subscriptions.revoke_subscription",
]

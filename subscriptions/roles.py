"""The subscriptions app's share of the staff roles (see monetization.roles)."""

from monetization.roles import COMPLIANCE, FINANCE, SUPPORT

ROLE_PERMISSIONS: dict[str, list[str]] = {SUPPORT: [], FINANCE: [], COMPLIANCE: []}

# --- Subscription lifecycle and grants (h2): each transition declares its permission on the model ---
LIFECYCLE_PERMISSIONS: dict[str, list[str]] = {
    SUPPORT: [
        "subscriptions.view_subscription",
        "subscriptions.view_dunningattempt",
        "subscriptions.cancel_subscription",
        "subscriptions.extend_subscription",
        "subscriptions.pause_subscription",
        "subscriptions.resume_subscription",
        "subscriptions.view_grant",
        "subscriptions.add_grant",
        "subscriptions.change_grant",  # revoking a grant (with a reason) from its page
    ],
    FINANCE: ["subscriptions.view_subscription", "subscriptions.view_dunningattempt", "subscriptions.view_grant"],
    COMPLIANCE: [
        "subscriptions.view_subscription",
        "subscriptions.view_grant",
        "subscriptions.revoke_subscription",
    ],
}
for _role, _perms in LIFECYCLE_PERMISSIONS.items():
    ROLE_PERMISSIONS.setdefault(_role, []).extend(p for p in _perms if p not in ROLE_PERMISSIONS[_role])

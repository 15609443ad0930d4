"""Staff roles: the Django groups Support, Finance and Compliance, with exactly the
permissions their jobs need. Each app declares its share in ``<app>/roles.py``
as ``ROLE_PERMISSIONS = {"Support": ["app_label.codename", ...], ...}`` and
registers it in :data:`role_shares` from its AppConfig.ready();
:func:`sync_roles` makes the groups match the union, adding and removing.
"""

from __future__ import annotations

from django.apps import apps as global_apps

from monetization.registry import Registry

SUPPORT = "Support"
FINANCE = "Finance"
COMPLIANCE = "Compliance"
ROLES = (SUPPORT, FINANCE, COMPLIANCE)

# Each app's share of the roles: role_shares.register(app_label, ROLE_PERMISSIONS).
role_shares: Registry[dict[str, list[str]]] = Registry("role share")

# The money core's own share.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    SUPPORT: [
        "monetization.view_customer",
        "monetization.view_provideridentity",
        "monetization.view_payment",
    ],
    FINANCE: [
        "monetization.view_customer",
        "monetization.view_payment",
        "monetization.view_journalentry",
        "monetization.view_journalline",
        # Reconciling against provider reports means mapping provider ids to customers.
        "monetization.view_provideridentity",
    ],
    COMPLIANCE: [
        "monetization.view_customer",
        "monetization.view_provideridentity",
        "monetization.view_payment",
        "monetization.view_auditevent",
    ],
}

# Webhook inbox: Support and Finance read it; Support replays failed events.
ROLE_PERMISSIONS[SUPPORT] += ["monetization.view_webhookevent", "monetization.replay_webhookevent"]
ROLE_PERMISSIONS[FINANCE] += ["monetization.view_webhookevent"]
# Disputes: Finance answers them (the queue by evidence due date).
ROLE_PERMISSIONS[FINANCE] += ["monetization.view_dispute"]
# Reconciliation with the providers' reports: Finance imports them and resolves what differs.
ROLE_PERMISSIONS[FINANCE] += [
    "monetization.view_providerreport",
    "monetization.add_providerreport",
    "monetization.view_reconciliationmismatch",
    "monetization.resolve_reconciliationmismatch",
]


def role_permissions() -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {role: set() for role in ROLES}
    for share in role_shares:
        for role, perms in share.items():
            merged[role].update(perms)
    return merged


def sync_roles(apps=None, *, strict: bool = False) -> dict[str, int]:
    """Create the groups and set their permissions to exactly what the roles declare.

    Permissions that do not exist yet (their model is migrated later) are
    skipped unless ``strict``; the post_migrate hook runs again once they exist.
    """
    if apps is None:
        apps = global_apps
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    result = {}
    for role, wanted in role_permissions().items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for dotted in sorted(wanted):
            app_label, codename = dotted.split(".", 1)
            perm = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if perm is None:
                if strict:
                    raise LookupError(f"Role {role}: permission {dotted} does not exist")
                continue
            perms.append(perm)
        group.permissions.set(perms)
        result[role] = len(perms)
    return result


def sync_roles_after_migrate(sender, app_config=None, using="default", **kwargs):
    # Run once, after the last app has had its permissions created (post_migrate goes to every
    # app with models, in INSTALLED_APPS order).
    last = [config for config in global_apps.get_app_configs() if config.models_module is not None][-1]
    if app_config is None or app_config.label != last.label:
        return
    sync_roles()


# Support console: refunds, idempotency, audit trail.
def _extend(role: str, perms: list[str]) -> None:
    ROLE_PERMISSIONS.setdefault(role, [])
    ROLE_PERMISSIONS[role].extend(p for p in perms if p not in ROLE_PERMISSIONS[role])


_extend(SUPPORT, ["monetization.view_refund", "monetization.add_refund", "monetization.request_refund"])
_extend(FINANCE, ["monetization.view_refund", "monetization.approve_refund", "monetization.view_provideridentity"])
_extend(COMPLIANCE, ["monetization.view_refund", "monetization.view_auditevent"])

# Personal data requests: Support logs an erasure request and sees what the customer must cancel
# themselves; Compliance exports a customer's data and executes or rejects erasures.
_extend(SUPPORT, ["monetization.view_erasurerequest", "monetization.add_erasurerequest"])
_extend(
    COMPLIANCE,
    [
        "monetization.view_erasurerequest",
        "monetization.add_erasurerequest",
        "monetization.execute_erasurerequest",
        "monetization.export_personal_data",
    ],
)
# Transfers and merges of customers: Support moves a purchase or merges two accounts of one person;
# one that moves more money than a refund could without approval waits for Finance (never the requester).
_extend(SUPPORT, ["monetization.view_customermerge", "monetization.request_customer_merge"])
_extend(FINANCE, ["monetization.view_customermerge", "monetization.approve_customer_merge"])
_extend(COMPLIANCE, ["monetization.view_customermerge"])

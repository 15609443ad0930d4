"""The subscriptions app's share of the staff roles (see monetization.roles).

Every role reads the catalog (support answers "what does Premium include,
what does it cost in Brazil"); nobody but a superuser changes it: what we
sell and at what price is a product decision, not a support action.
"""

from monetization.roles import COMPLIANCE, FINANCE, SUPPORT

CATALOG_VIEW = [
    "subscriptions.view_entitlement",
    "subscriptions.view_product",
    "subscriptions.view_plan",
    "subscriptions.view_sku",
    "subscriptions.view_price",
]

ROLE_PERMISSIONS: dict[str, list[str]] = {
    SUPPORT: [*CATALOG_VIEW],
    FINANCE: [*CATALOG_VIEW],
    COMPLIANCE: [*CATALOG_VIEW],
}

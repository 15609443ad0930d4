"""Staff roles hold exactly the permissions they declare, and the admin enforces them."""

import pytest
from django.contrib.auth.models import Group

from monetization.roles import COMPLIANCE, FINANCE, ROLES, SUPPORT, role_permissions, sync_roles

pytestmark = pytest.mark.django_db

CATALOG = {f"subscriptions.view_{m}" for m in ("entitlement", "product", "plan", "sku", "price")}
# What each role must have at least (every app adds its own share).
EXPECTED_AT_LEAST = {
    SUPPORT: CATALOG
    | {"monetization.view_customer", "monetization.view_provideridentity", "monetization.view_payment"},
    FINANCE: CATALOG
    | {
        "monetization.view_customer",
        "monetization.view_provideridentity",
        "monetization.view_payment",
        "monetization.view_journalentry",
        "monetization.view_journalline",
    },
    COMPLIANCE: CATALOG
    | {
        "monetization.view_customer",
        "monetization.view_provideridentity",
        "monetization.view_payment",
        "monetization.view_auditevent",
    },
}


def _group_perms(role):
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Group.objects.get(name=role).permissions.select_related("content_type")
    }


def test_each_group_has_exactly_its_declared_permissions():
    declared = role_permissions()
    for role in ROLES:
        assert _group_perms(role) == declared[role], role
        assert EXPECTED_AT_LEAST[role] <= declared[role], role


def test_no_role_may_change_the_catalog_keys_or_ledger():
    declared = role_permissions()
    forbidden_models = ("entitlement", "product", "plan", "sku", "price", "apikey", "journalentry", "journalline")
    for role in ROLES:
        for perm in declared[role]:
            _app_label, codename = perm.split(".")
            action, _, model = codename.partition("_")
            # Django's own add/change/delete permissions; custom action permissions
            # (grant_entitlement, ...) are not changes to the catalog.
            if action in ("add", "change", "delete") and (model in forbidden_models or model == "auditevent"):
                raise AssertionError((role, perm))
        assert not any(p.endswith("_apikey") for p in declared[role]), role
    assert "monetization.view_auditevent" not in declared[SUPPORT] | declared[FINANCE]
    assert not any("journal" in p for p in declared[SUPPORT] | declared[COMPLIANCE])


def test_sync_roles_removes_extra_permissions():
    from django.contrib.auth.models import Permission

    group = Group.objects.get(name=SUPPORT)
    group.permissions.add(Permission.objects.get(codename="change_product"))
    sync_roles()
    assert "subscriptions.change_product" not in _group_perms(SUPPORT)


def _staff(django_user_model, role):
    user = django_user_model.objects.create_user(role.lower(), password="x-long-password-1", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.mark.parametrize(
    ("role", "url", "status"),
    [
        (SUPPORT, "/admin/monetization/journalentry/", 403),
        (FINANCE, "/admin/monetization/journalentry/", 200),
        (COMPLIANCE, "/admin/monetization/journalentry/", 403),
        (SUPPORT, "/admin/monetization/auditevent/", 403),
        (FINANCE, "/admin/monetization/auditevent/", 403),
        (COMPLIANCE, "/admin/monetization/auditevent/", 200),
        (SUPPORT, "/admin/monetization/customer/", 200),
        (SUPPORT, "/admin/subscriptions/product/", 200),
        (SUPPORT, "/admin/subscriptions/product/add/", 403),
        (FINANCE, "/admin/subscriptions/price/add/", 403),
        (COMPLIANCE, "/admin/subscriptions/plan/add/", 403),
        (SUPPORT, "/admin/monetization/apikey/", 403),
        (FINANCE, "/admin/monetization/apikey/add/", 403),
        (SUPPORT, "/admin/monetization/customer/add/", 403),
    ],
)
def test_admin_enforces_roles(client, django_user_model, role, url, status):
    client.force_login(_staff(django_user_model, role))
    assert client.get(url).status_code == status


def test_viewer_cannot_change_catalog_through_post(client, django_user_model):
    from subscriptions.models import Product
    from tests.subscriptions.factories import ProductFactory

    product = ProductFactory(name="Premium")
    client.force_login(_staff(django_user_model, SUPPORT))
    response = client.post(f"/admin/subscriptions/product/{product.pk}/change/", {"name": "Free Premium", "code": "x"})
    assert response.status_code == 403
    assert Product.objects.get(pk=product.pk).name == "Premium"

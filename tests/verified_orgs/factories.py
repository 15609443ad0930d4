import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from djmoney.money import Money

from monetization.roles import sync_roles
from subscriptions.models import Plan, Platform, Price, Product, Sku
from tests.monetization.factories import CustomerFactory
from verified_orgs.models import Organization
from verified_orgs.services.organizations import (
    organization_apply,
    organization_start_review,
    organization_verify,
)

EPOCH = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)


def org_catalog(base: str = "1000.00", seat: str = "50.00", currency: str = "USD", country: str = "US") -> Plan:
    """The Verified Organization product and monthly plan with a base and a seat price."""
    product, _ = Product.objects.get_or_create(
        code="verified-org", defaults={"name": "Verified Organization", "kind": Product.Kind.ORGANIZATION, "rank": 1}
    )
    plan, _ = Plan.objects.get_or_create(
        code="verified-org-monthly", defaults={"product": product, "interval": Plan.Interval.MONTH}
    )
    Sku.objects.get_or_create(plan=plan, platform=Platform.WEB, defaults={"store_product_id": "price_verified_org"})
    for component, amount in ((Price.Component.BASE, base), (Price.Component.SEAT, seat)):
        Price.objects.get_or_create(
            plan=plan,
            platform="",
            country=country,
            component=component,
            valid_from=EPOCH,
            defaults={"amount": Money(amount, currency)},
        )
    return plan


def compliance_user(username: str = "compliance"):
    sync_roles()
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name="Compliance"))
    return get_user_model().objects.get(pk=user.pk)  # fresh permission cache


def staff_user(username: str, role: str | None = None):
    sync_roles()
    user = get_user_model().objects.create_user(username, password="pw", is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return get_user_model().objects.get(pk=user.pk)


_n = iter(range(1, 10**9))


def applied_org(**kwargs) -> Organization:
    n = next(_n)
    billing = kwargs.pop("billing_customer", None) or CustomerFactory()
    return organization_apply(
        name=kwargs.pop("name", f"Org {n}"),
        handle=kwargs.pop("handle", f"org{n}_{billing.pk}"),
        billing_customer=billing,
        website="https://example.org",
        documents=[{"label": "Registration", "url": "https://example.org/reg.pdf"}],
        notes="Please verify us",
        **kwargs,
    )


def verified_org(reviewer=None, **kwargs) -> Organization:
    org_catalog()
    reviewer = reviewer or compliance_user(f"reviewer{next(_n)}")
    org = applied_org(**kwargs)
    organization_start_review(organization=org, reviewer=reviewer)
    return organization_verify(organization=org, reviewer=reviewer, reason="documents check out")

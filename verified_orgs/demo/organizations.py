"""Demo data: organizations in every verification state, some with hundreds of affiliates,
and a compliance review queue with work in it.

Idempotent: organizations are keyed by handle and skipped when present. Uses
the existing demo customers (skips with a note when there are too few). Works on
SQLite: the services' row locks are no-ops there, nothing PostgreSQL-only here.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from djmoney.money import Money

from monetization import clock
from monetization.demo.support import with_fake_providers
from monetization.errors import DomainError
from monetization.models import Customer, Payment, Provider
from monetization.services.permissions import System
from subscriptions.models import Plan, Platform, Price, Product, Sku, Subscription
from subscriptions.services.payments import subscription_payment_record
from verified_orgs.models import Affiliation, Organization, OrgInvoice, SeatLedgerEntry
from verified_orgs.services.affiliations import INVITATION_TTL, affiliation_accept, affiliation_invite
from verified_orgs.services.billing import org_plan
from verified_orgs.services.organizations import (
    organization_apply,
    organization_cancel,
    organization_reject,
    organization_start_review,
    organization_suspend,
    organization_verify,
)

# (name, handle, final state, affiliates, days since application)
ORGS = [
    ("Acme News", "acmenews", "verified", 300, 60),
    ("Northwind Traders", "northwind", "verified", 150, 45),
    ("City Transit Authority", "citytransit", "verified", 12, 30),
    ("Globex Sports", "globexsports", "suspended", 40, 50),
    ("Initech Labs", "initech", "cancelled", 5, 90),
    ("Umbrella Pharma", "umbrellapharma", "rejected", 0, 20),
    ("Hooli Cloud", "hooli", "in_review", 0, 6),
    ("Stark Foundation", "starkfoundation", "in_review", 0, 4),
    ("Wayne Enterprises", "wayne", "applied", 0, 3),
    ("Pied Piper", "piedpiper", "applied", 0, 2),
    ("Vandelay Industries", "vandelay", "applied", 0, 1),
]
SERVICE_ADDED = 6  # affiliates per org added through the services (prorated payments); the rest bulk-loaded
MIN_CUSTOMERS = 60


def _ensure_catalog(out) -> None:
    try:
        org_plan()
        return
    except DomainError:
        pass
    product, _ = Product.objects.get_or_create(
        code="verified-org", defaults={"name": "Verified Organization", "kind": Product.Kind.ORGANIZATION, "rank": 1}
    )
    plan, _ = Plan.objects.get_or_create(
        code="verified-org-monthly", defaults={"product": product, "interval": Plan.Interval.MONTH}
    )
    Sku.objects.get_or_create(plan=plan, platform=Platform.WEB, defaults={"store_product_id": "price_verified_org"})
    since = clock.now() - timedelta(days=400)
    for country, currency, base, seat in (("US", "USD", "1000.00", "50.00"), ("GB", "GBP", "800.00", "40.00")):
        for component, amount in ((Price.Component.BASE, base), (Price.Component.SEAT, seat)):
            Price.objects.get_or_create(
                plan=plan,
                platform="",
                country=country,
                component=component,
                valid_from=since,
                defaults={"amount": Money(amount, currency)},
            )
    out.write("  created the Verified Organization plan ($1,000/month + $50/seat)")


def _reviewer():
    """The demo's Compliance login when there is one (the reviews then read as theirs), else the seed itself."""
    User = get_user_model()
    return (
        User.objects.filter(groups__name="Compliance", is_active=True).order_by("id").first()
        or User.objects.filter(is_superuser=True).order_by("id").first()
        or System("demo seed")
    )


def _bulk_affiliates(org: Organization, customers: list[Customer], at) -> None:
    """Load many active seats at once, with one ledger row that brings the count in step."""
    Affiliation.objects.bulk_create(
        [
            Affiliation(
                organization=org,
                customer=c,
                state=Affiliation.State.ACTIVE,
                invited_by=org.billing_customer,
                token_hash=Affiliation.hash_token(f"demo-{org.handle}-{c.pk}"),
                invited_at=at,
                expires_at=at + INVITATION_TTL,
                accepted_at=at,
            )
            for c in customers
        ],
        batch_size=500,
    )
    last = SeatLedgerEntry.objects.filter(organization=org).order_by("-id").first()
    quantity = last.quantity + len(customers)
    SeatLedgerEntry.objects.create(
        organization=org,
        at=at,
        quantity=quantity,
        delta=len(customers),
        reason=SeatLedgerEntry.Reason.AFFILIATE_ADDED,
        period_start=last.period_start,
        period_end=last.period_end,
        seat_price=last.seat_price,
        proration=Money(0, str(last.seat_price.currency)),
        period_exact_total=last.period_exact_total,
        period_charged_total=last.period_charged_total,
    )
    Subscription.objects.filter(pk=org.subscription_id).update(quantity=quantity)


def _stripe_collects_first_invoice(org: Organization) -> None:
    """What Stripe's invoice.paid does for the demo's orgs (the demo has no Stripe to send it):
    the payment recorded under the Stripe invoice id, which pays our invoice through the hook."""
    invoice = OrgInvoice.objects.get(organization=org)
    subscription_payment_record(
        subscription=org.subscription,
        customer=org.billing_customer,
        provider=Provider.STRIPE,
        provider_reference=invoice.provider_invoice_id,
        amount=Money(invoice.total, invoice.currency),
        kind=Payment.Kind.INITIAL,
        occurred_at=clock.now(),
    )


def seed(*, rng, out, options=None) -> None:
    # The demo has no Stripe account: organizations are billed through the in-memory double.
    with_fake_providers(lambda: _seed(rng=rng, out=out))


def _seed(*, rng, out) -> None:
    _ensure_catalog(out)
    taken = set(
        Affiliation.objects.filter(state__in=Affiliation.LIVE_STATES).values_list("customer_id", flat=True)
    ) | set(Organization.objects.values_list("billing_customer_id", flat=True))
    pool = [c for c in Customer.objects.order_by("id")[:5000] if c.pk not in taken]
    todo = [spec for spec in ORGS if not Organization.objects.filter(handle=spec[1]).exists()]
    if not todo:
        out.write("  organizations already seeded")
        return
    needed = sum(spec[3] + 3 for spec in todo)
    if len(pool) < max(MIN_CUSTOMERS, min(needed, 200)):
        out.write(f"  skipped organizations: only {len(pool)} free demo customers")
        return
    rng.shuffle(pool)
    reviewer = _reviewer()
    now = clock.now()
    made = 0
    for name, handle, state, n_affiliates, days_ago in todo:
        if len(pool) < 3:
            break
        billing = pool.pop()
        applied_at = now - timedelta(days=days_ago, hours=rng.randint(0, 20))
        with clock.frozen(applied_at):
            org = organization_apply(
                name=name,
                handle=handle,
                billing_customer=billing,
                admins=[pool.pop()],
                website=f"https://{handle}.example",
                country=rng.choice(["US", "US", "US", "GB"]),
                documents=[
                    {
                        "label": "Certificate of incorporation",
                        "url": f"https://docs.example/{handle}/incorporation.pdf",
                    },
                    {"label": "Proof of domain", "url": f"https://docs.example/{handle}/dns.txt"},
                ],
                notes=f"{name} requests verification for its official accounts.",
                actor_label="demo",
            )
        if state == "applied":
            made += 1
            continue
        with clock.frozen(applied_at + timedelta(hours=20)):
            org = organization_start_review(organization=org, reviewer=reviewer, reason="Documents received")
        if state == "in_review":
            made += 1
            continue
        decided_at = applied_at + timedelta(days=2)
        if state == "rejected":
            with clock.frozen(decided_at):
                organization_reject(
                    organization=org, reviewer=reviewer, reason="Incorporation certificate does not match the name."
                )
            made += 1
            continue
        # Verified at the start of the current period, so seats added now are prorated mid-period.
        with clock.frozen(now - timedelta(days=rng.randint(3, 20))):
            org = organization_verify(organization=org, reviewer=reviewer, reason="Registry and domain check out")
            _stripe_collects_first_invoice(org)
        org.refresh_from_db()
        count = min(n_affiliates, max(0, len(pool) - 3))
        members, pool = pool[:count], pool[count:]
        for customer in members[:SERVICE_ADDED]:
            _, token = affiliation_invite(organization=org, customer=customer, invited_by=billing, actor_label="demo")
            affiliation_accept(token=token, customer=customer, actor_label="demo")
        if len(members) > SERVICE_ADDED:
            _bulk_affiliates(org, members[SERVICE_ADDED:], now)
        # A couple of open invitations, and one that has expired.
        for _ in range(min(2, len(pool))):
            affiliation_invite(organization=org, customer=pool.pop(), invited_by=billing, actor_label="demo")
        if pool:
            with clock.frozen(now - timedelta(days=10)):
                affiliation_invite(organization=org, customer=pool.pop(), invited_by=billing, actor_label="demo")
        if state == "suspended":
            organization_suspend(organization=org, actor=reviewer, reason="Impersonation reports under investigation")
        elif state == "cancelled":
            organization_cancel(organization=org, actor=reviewer, reason="The organization closed its account")
        made += 1
    out.write(f"  {made} organizations ({', '.join(sorted({s[2] for s in todo}))})")

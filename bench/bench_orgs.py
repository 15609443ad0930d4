"""Verified organizations at 10,000 affiliates: seat list API, admin page, adding a seat.

Targets: a 100-row page of the seat list API <= 50 ms median; the
organization's admin page <= 200 ms median with a constant query count;
adding one seat (proration, ledger, invoice item and quantity pushed to Stripe Billing's
in-memory double) <= 50 ms median.
In-process Django test Client; the data is built set-based in the bench DB.
"""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from djmoney.money import Money

from monetization import clock
from monetization.api.throttling import ClientThrottle
from monetization.models import ApiKey, Customer
from monetization.providers.base import reset_providers
from subscriptions.models import Plan, Platform, Price, Product, Sku
from verified_orgs.models import Affiliation, Organization
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite
from verified_orgs.services.organizations import organization_apply, organization_start_review, organization_verify

BILLING_DOUBLE = "monetization.demo.providers.FakeProvider"
TARGETS = {"seat_list_page_ms": 50, "admin_page_ms": 200, "add_seat_ms": 50}


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 2)


def _catalog() -> None:
    product, _ = Product.objects.get_or_create(
        code="verified-org", defaults={"name": "Verified Organization", "kind": Product.Kind.ORGANIZATION, "rank": 1}
    )
    plan, _ = Plan.objects.get_or_create(
        code="verified-org-monthly", defaults={"product": product, "interval": Plan.Interval.MONTH}
    )
    Sku.objects.get_or_create(plan=plan, platform=Platform.WEB, defaults={"store_product_id": "price_verified_org"})
    epoch = clock.now() - timedelta(days=365)
    for component, amount in ((Price.Component.BASE, "1000.00"), (Price.Component.SEAT, "50.00")):
        if not Price.objects.filter(plan=plan, country="US", component=component).exists():
            Price.objects.create(
                plan=plan, country="US", component=component, amount=Money(amount, "USD"), valid_from=epoch
            )


def _build(run: str, n_affiliates: int, reviewer) -> Organization:
    billing = Customer.objects.create(external_id=f"bench-{run}-admin", handle=f"bench_{run}_admin", country="US")
    org = organization_apply(name=f"Bench {run}", handle=f"bench_{run}", billing_customer=billing)
    organization_start_review(organization=org, reviewer=reviewer)
    org = organization_verify(organization=org, reviewer=reviewer, reason="bench")
    now = clock.now()
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"bench-{run}-{i}", handle=f"b{run}_{i}", country="US") for i in range(n_affiliates)],
        batch_size=5000,
    )
    Affiliation.objects.bulk_create(
        [
            Affiliation(
                organization=org,
                customer=c,
                state=Affiliation.State.ACTIVE,
                invited_by=billing,
                token_hash=Affiliation.hash_token(f"bench-{run}-{c.pk}"),
                invited_at=now,
                expires_at=now + timedelta(days=7),
                accepted_at=now,
            )
            for c in customers
        ],
        batch_size=5000,
    )
    # The seats were bulk-loaded: one ledger row brings the count in step (the ledger is append-only).
    from verified_orgs.models import SeatLedgerEntry

    last = SeatLedgerEntry.objects.filter(organization=org).order_by("-id").first()
    SeatLedgerEntry.objects.create(
        organization=org,
        at=now,
        quantity=n_affiliates,
        delta=n_affiliates,
        reason=SeatLedgerEntry.Reason.AFFILIATE_ADDED,
        period_start=last.period_start,
        period_end=last.period_end,
        seat_price=last.seat_price,
        proration=Money(0, "USD"),
        period_exact_total=last.period_exact_total,
        period_charged_total=last.period_charged_total,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE verified_orgs_affiliation")
        cursor.execute("ANALYZE monetization_customer")
    return org


def run(args) -> dict:
    # Organizations are billed through Stripe Billing: here its in-memory double (no network in a bench).
    with override_settings(PAYMENT_PROVIDERS={**settings.PAYMENT_PROVIDERS, "stripe": BILLING_DOUBLE}):
        reset_providers()
        try:
            return _run(args)
        finally:
            reset_providers()


def _run(args) -> dict:
    call_command("migrate", verbosity=0)
    n = 1_000 if getattr(args, "quick", False) else 10_000
    run_id = str(int(time.time()))
    _catalog()
    User = get_user_model()
    reviewer = User.objects.create_superuser(f"bench-orgs-{run_id}", password="x")
    started = time.perf_counter()
    with transaction.atomic():
        org = _build(run_id, n, reviewer)
    build_s = round(time.perf_counter() - started, 1)

    # Throttling stays on (its counters are part of each request's cost) with ceilings the run never reaches.
    ClientThrottle.THROTTLE_RATES = dict.fromkeys(ClientThrottle.THROTTLE_RATES, "100000000/min")
    full, prefix, key_hash = ApiKey.generate()
    ApiKey.objects.create(name=f"bench-orgs-{run_id}", prefix=prefix, key_hash=key_hash, scopes=["orgs:write"])
    api = Client(
        SERVER_NAME="localhost",
        HTTP_AUTHORIZATION=f"Bearer {full}",
        HTTP_X_ACTING_CUSTOMER=org.billing_customer.external_id,
    )
    list_url = f"/api/v1/orgs/{org.handle}/affiliates?state=active"
    first = api.get(list_url)
    assert first.status_code == 200, first.content[:300]
    rows = len(first.json()["results"])
    deep_url = first.json()["next"]
    for _ in range(30):  # walk ~30 pages in for a deep cursor
        nxt = api.get(deep_url).json()["next"]
        deep_url = nxt or deep_url
    seat_list_ms = _median_ms(lambda: api.get(list_url), 60)
    seat_list_deep_ms = _median_ms(lambda: api.get(deep_url), 60)
    with CaptureQueriesContext(connection) as q_api:
        api.get(list_url)

    staff = Client(SERVER_NAME="localhost")
    staff.force_login(reviewer)
    page_url = f"/admin/verified_orgs/organization/{org.pk}/change/"
    assert staff.get(page_url).status_code == 200
    admin_ms = _median_ms(lambda: staff.get(page_url), 20)
    admin_deep_ms = _median_ms(lambda: staff.get(page_url + "?seats_page=150"), 10)
    with CaptureQueriesContext(connection) as q_admin_first:
        staff.get(page_url)
    with CaptureQueriesContext(connection) as q_admin_deep:
        staff.get(page_url + "?seats_page=150")

    # Adding one seat: accept a prepared invitation (row locks, proration, payment, ledger, invoice, audit).
    invitations = []
    for i in range(60):
        c = Customer.objects.create(external_id=f"bench-{run_id}-new-{i}", handle=f"bn{run_id}_{i}")
        invitations.append((c, affiliation_invite(organization=org, customer=c, invited_by=org.billing_customer)[1]))
    pending = iter(invitations)

    def add_seat():
        c, token = next(pending)
        affiliation_accept(token=token, customer=c)

    add_seat_ms = _median_ms(add_seat, 50)
    with CaptureQueriesContext(connection) as q_seat:
        add_seat()

    return {
        "affiliates": n,
        "build_seconds": build_s,
        "seat_list_rows": rows,
        "seat_list_page_ms": seat_list_ms,
        "seat_list_deep_page_ms": seat_list_deep_ms,
        "seat_list_queries": len(q_api),
        "admin_page_ms": admin_ms,
        "admin_page_150_ms": admin_deep_ms,
        "admin_page_queries_page1": len(q_admin_first),
        "admin_page_queries_page150": len(q_admin_deep),
        "add_seat_ms": add_seat_ms,
        "add_seat_queries": len(q_seat),
        "targets_ms": TARGETS,
    }

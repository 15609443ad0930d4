"""Personal data requests: the export holds every source, erasure leaves no personal field anywhere
in the database while the books still balance, and only Compliance may export or erase."""

from __future__ import annotations

import datetime
import json
import threading

import pytest
from django.apps import apps
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.management import call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from djmoney.money import Money
from rest_framework.test import APIClient

from creators.models import CreatorSubscriptionLink
from monetization import clock
from monetization.models import (
    AuditEvent,
    Customer,
    ErasureRequest,
    JournalLine,
    OutboxEvent,
    Payment,
    ProviderIdentity,
    Refund,
    WebhookEvent,
)
from monetization.personal_data import Subject, not_personal_data, personal_data_sources
from monetization.services.audit import audit_record
from monetization.services.privacy import erasure_request_create, erasure_request_execute
from subscriptions.models import Platform, Product, Subscription
from subscriptions.services.actions import staff_grant_create
from subscriptions.services.payments import subscription_payment_record
from tests.creators.factories import make_creator
from tests.monetization.factories import CustomerFactory, ProviderIdentityFactory
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff, register_with_fake  # noqa: F401
from tests.monetization.test_db_roles import as_app_role
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SubscriptionFactory
from tests.verified_orgs.factories import verified_org
from verified_orgs.models import Affiliation
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite

pytestmark = pytest.mark.django_db

BASE = "/api/v1/staff"
NAME = "Ada Lovelace"
HANDLE = "adalovelace1815"
EMAIL = "ada.lovelace@analytical.example"
NEEDLES = (NAME, HANDLE, EMAIL)
APPS = ("monetization", "subscriptions", "verified_orgs", "creators")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _post(client, url, body=None, **headers):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json", **headers)


def _stripe_event(event_id: str, event_type: str, obj: dict, ref: str = "") -> WebhookEvent:
    payload = {"id": event_id, "type": event_type, "data": {"object": obj}}
    return WebhookEvent.objects.create(
        provider="stripe",
        event_id=event_id,
        event_type=event_type,
        subscription_ref=ref,
        occurred_at=clock.now(),
        payload=payload,
        raw_body=json.dumps(payload),
    )


def _customer_with_history(*, handle, email, name, ext, support, tag):
    """A customer on all three providers with refunds, a grant, staff actions, provider events,
    outbound events and the admin's own log; returns (customer, the web subscription)."""
    customer = CustomerFactory(handle=handle, email=email, external_id=ext)
    ProviderIdentityFactory(customer=customer, provider="stripe", kind="customer_id", value=f"cus_{tag}")
    ProviderIdentityFactory(customer=customer, provider="app_store", kind="original_transaction_id", value=f"2000{tag}")
    ProviderIdentityFactory(customer=customer, provider="google_play", kind="purchase_token", value=f"play-{tag}")
    web = SubscriptionFactory(customer=customer, provider="stripe", provider_subscription_id=f"sub_{tag}")
    register_with_fake(web)
    ios = SubscriptionFactory(
        customer=customer, provider="app_store", platform=Platform.IOS, provider_subscription_id=f"2000{tag}"
    )
    play = SubscriptionFactory(
        customer=customer, provider="google_play", platform=Platform.ANDROID, provider_subscription_id=f"play-{tag}"
    )
    payments = {}
    for sub in (web, ios, play):
        payments[sub.provider], _ = subscription_payment_record(
            subscription=sub,
            customer=customer,
            provider=sub.provider,
            provider_reference=f"pay_{sub.provider}_{tag}",
            amount=Money("8.00", "USD"),
            fee=Money("0", "USD"),
            tax=Money("0", "USD"),
        )
    # What Stripe sends about the person: their name and e-mail on the charge and the invoice.
    _stripe_event(
        f"evt_charge_{tag}",
        "charge.succeeded",
        {
            "object": "charge",
            "id": f"ch_{tag}",
            "customer": f"cus_{tag}",
            "billing_details": {"name": name, "email": email, "address": {"country": "GB"}},
            "amount": 800,
        },
    )
    _stripe_event(
        f"evt_invoice_{tag}",
        "invoice.paid",
        {"object": "invoice", "id": f"in_{tag}", "customer_name": name, "customer_email": email, "amount_paid": 800},
        ref=f"sub_{tag}",
    )
    client = client_for(support)
    response = _post(
        client,
        f"{BASE}/refunds",
        {
            "payment_id": payments["stripe"].pk,
            "amount": "2.00",
            "reason_code": "goodwill",
            "note": f"{name} wrote in about a double charge",
        },
        HTTP_IDEMPOTENCY_KEY=f"refund-{tag}",
    )
    assert response.status_code == 201, response.content
    refund = Refund.objects.get(pk=response.json()["id"])
    staff_grant_create(
        customer=customer,
        user=support,
        reason=f"@{handle} lost access during the outage",
        entitlement=EntitlementFactory(),
        days=7,
    )
    audit_record(
        action="customer.update",
        obj=customer,
        actor=support,
        customer=customer,
        before={"email": f"old.{email}"},
        after={"email": email, "note": f"{name} asked for it"},
        reason="changed at the customer's request",
    )
    # About one of their objects, not on their timeline.
    audit_record(action="refund.note", obj=refund, actor=support, reason=f"Called {name} back, mailed {email}")
    OutboxEvent.objects.create(
        customer=customer,
        customer_external_id=customer.external_id,
        type="CUSTOMER_UPDATED",
        data={"handle": handle, "email": email},
    )
    LogEntry.objects.log_actions(
        user_id=support.pk, queryset=[customer], action_flag=CHANGE, change_message="Changed email.", single_object=True
    )
    return customer, web


@pytest.fixture
def world(fake_providers, stripe_billing_double, make_staff):
    support, compliance = make_staff("Support"), make_staff("Compliance")
    ada, ada_web = _customer_with_history(handle=HANDLE, email=EMAIL, name=NAME, ext="1815", support=support, tag="ada")
    grace, _ = _customer_with_history(
        handle="gracehopper1906",
        email="grace@cobol.example",
        name="Grace Hopper",
        ext="1906",
        support=support,
        tag="gh",
    )
    # An organization seat, and a fan payment shared with a creator.
    org = verified_org()
    _, token = affiliation_invite(organization=org, customer=ada, invited_by=org.billing_customer)
    affiliation_accept(token=token, customer=ada)
    creator = make_creator()
    plan = PlanFactory(product=ProductFactory(kind=Product.Kind.CREATOR))
    CreatorSubscriptionLink.objects.create(plan=plan, creator=creator)
    fan_sub = SubscriptionFactory(customer=ada, plan=plan, provider_subscription_id="sub_ada_fan")
    subscription_payment_record(
        subscription=fan_sub,
        customer=ada,
        provider="stripe",
        provider_reference="in_ada_fan",
        amount=Money("5.00", "USD"),
    )
    return {
        "support": support,
        "compliance": compliance,
        "ada": ada,
        "ada_web": ada_web,
        "grace": grace,
        "creator": creator,
        "org": org,
    }


# --- where personal data lives ------------------------------------------------------------------


def _refers_to_customer() -> set[str]:
    """Every model with a chain of foreign keys (or one-to-one links) ending at Customer."""
    customer = apps.get_model("monetization", "Customer")
    found = {customer._meta.label}
    models = [m for m in apps.get_models() if not m._meta.proxy]
    grew = True
    while grew:
        grew = False
        for model in models:
            if model._meta.label in found:
                continue
            for field in model._meta.concrete_fields:
                target = getattr(field, "related_model", None)
                if field.is_relation and target is not None and target._meta.concrete_model._meta.label in found:
                    found.add(model._meta.label)
                    grew = True
                    break
    return found


def test_every_model_that_refers_to_a_customer_is_exported_or_declared_not_personal():
    declared = {label for label, _ in personal_data_sources.items()} | {label for label, _ in not_personal_data.items()}
    missing = sorted(_refers_to_customer() - declared)
    assert not missing, f"Add a PersonalDataSource (or a not-personal declaration) for: {missing}"
    # And nothing is declared that does not exist.
    for label in declared:
        apps.get_model(label)


# --- export ---------------------------------------------------------------------------------------


def test_compliance_exports_every_source_as_json_and_the_export_is_audited(world):
    compliance = world["compliance"]
    response = client_for(compliance).get(f"{BASE}/customers/1815/personal-data")
    assert response.status_code == 200, response.content
    assert "attachment" in response["Content-Disposition"]
    document = response.json()
    assert document["customer"]["email"] == EMAIL
    sources = document["sources"]
    assert set(sources) == {label for label, _ in personal_data_sources.items()}
    for label in (
        "monetization.Customer",
        "monetization.ProviderIdentity",
        "monetization.Payment",
        "monetization.Refund",
        "monetization.JournalEntry",
        "monetization.JournalLine",
        "monetization.AuditEvent",
        "monetization.OutboxEvent",
        "monetization.WebhookEvent",
        "monetization.IdempotencyKey",
        "admin.LogEntry",
        "subscriptions.Subscription",
        "subscriptions.Grant",
        "subscriptions.SubscriptionPayment",
        "verified_orgs.Affiliation",
        "verified_orgs.SeatLedgerEntry",
        "creators.CreatorSubscriptionShare",
    ):
        assert sources[label], label
    assert {row["provider"] for row in sources["subscriptions.Subscription"]} == {"stripe", "app_store", "google_play"}
    assert {row["event_id"] for row in sources["monetization.WebhookEvent"]} == {"evt_charge_ada", "evt_invoice_ada"}
    # Only Ada's rows: nothing of Grace's.
    assert "gracehopper1906" not in json.dumps(document)
    assert "token_hash" not in sources["verified_orgs.Affiliation"][0]
    assert AuditEvent.objects.filter(action="privacy.export", actor=compliance, customer=world["ada"]).exists()


def test_the_admin_download_is_the_same_export(world):
    client = APIClient()
    client.force_login(world["compliance"])
    response = client.get(f"/admin/monetization/erasurerequest/export/{world['ada'].pk}/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert set(json.loads(response.content)["sources"]) == {label for label, _ in personal_data_sources.items()}


@pytest.mark.parametrize("role", ["Support", "Finance", None])
def test_only_compliance_may_export_or_execute(world, make_staff, role):
    user = make_staff(role)
    erasure = ErasureRequest.objects.create(customer=world["ada"], reason="e-mail of 2026-11-30")
    before = AuditEvent.objects.count()
    client = client_for(user)
    for response in (
        client.get(f"{BASE}/customers/1815/personal-data"),
        _post(client, f"{BASE}/erasure-requests/{erasure.pk}/execute"),
        _post(client, f"{BASE}/erasure-requests/{erasure.pk}/reject", {"reason": "no"}),
        client.get(f"/admin/monetization/erasurerequest/export/{world['ada'].pk}/"),
    ):
        assert response.status_code == 403
    assert AuditEvent.objects.count() == before
    erasure.refresh_from_db()
    assert erasure.state == ErasureRequest.State.REQUESTED
    assert Customer.objects.get(pk=world["ada"].pk).email == EMAIL


# --- erasure --------------------------------------------------------------------------------------


def _text_columns() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name FROM information_schema.columns c
            JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
              AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
            ORDER BY 1, 2
            """
        )
        return cursor.fetchall()


def cells_containing(needles) -> list[tuple[str, str, str]]:
    """Every (table, column, needle) where some row's text or JSON holds the needle, in any case."""
    hits = []
    with connection.cursor() as cursor:
        for table, column in _text_columns():
            for needle in needles:
                cursor.execute(f'SELECT 1 FROM "{table}" WHERE "{column}"::text ILIKE %s LIMIT 1', [f"%{needle}%"])
                if cursor.fetchone():
                    hits.append((table, column, needle))
    return hits


def _export(customer) -> dict:
    from monetization.selectors_privacy import customer_personal_data

    document = customer_personal_data(Customer.objects.get(pk=customer.pk))
    document.pop("generated_at")
    return document


def test_erasure_leaves_no_personal_field_anywhere_and_the_books_still_balance(world):
    ada, support, compliance = world["ada"], world["support"], world["compliance"]
    found = cells_containing(NEEDLES)
    # The history really holds Ada's name, handle and e-mail in the places erasure must reach.
    tables = {table for table, _, _ in found}
    assert {
        "monetization_customer",
        "monetization_auditevent",
        "monetization_webhookevent",
        "monetization_refund",
        "monetization_outboxevent",
        "monetization_idempotencykey",
        "django_admin_log",
    } <= tables, found
    assert {needle for _, _, needle in found} == set(NEEDLES)
    grace_before, creator_before = _export(world["grace"]), _export(world["creator"].customer)
    money_before = sorted(Payment.objects.values_list("id", "amount", "refunded", "created_at"))
    lines_before = JournalLine.objects.count()

    response = _post(
        client_for(support), f"{BASE}/erasure-requests", {"customer": "1815", "reason": f"E-mail from {EMAIL}"}
    )
    assert response.status_code == 201, response.content
    erasure_id = response.json()["id"]
    assert response.json()["state"] == "requested"
    response = _post(
        client_for(compliance), f"{BASE}/erasure-requests/{erasure_id}/execute", {"reason": f"verified {NAME}"}
    )
    assert response.status_code == 200, response.content
    body = response.json()

    assert cells_containing(NEEDLES) == []
    call_command("ledger_check")  # raises CommandError when the books do not balance
    assert sorted(Payment.objects.values_list("id", "amount", "refunded", "created_at")) == money_before
    assert JournalLine.objects.count() == lines_before

    ada.refresh_from_db()
    assert (ada.handle, ada.email, ada.external_id) == (f"erased-{ada.pk}", "", "1815")
    # Keys kept: the provider ids still map the store's later events to the account.
    assert set(ProviderIdentity.objects.filter(customer=ada).values_list("value", flat=True)) == {
        "cus_ada",
        "2000ada",
        "play-ada",
    }
    # The web subscription was cancelled through the provider; the stores' are listed for Support.
    assert body["state"] == "done"
    outcome = body["outcome"]
    assert {(i["provider"], i["provider_subscription_id"]) for i in outcome["cancelled"]} == {
        ("stripe", "sub_ada"),
        ("stripe", "sub_ada_fan"),
    }
    assert {i["provider"] for i in outcome["customer_must_cancel"]} == {"app_store", "google_play"}
    assert Subscription.objects.get(provider_subscription_id="sub_ada").state == Subscription.State.CANCELED
    assert Subscription.objects.get(provider_subscription_id="2000ada").state == Subscription.State.ACTIVE
    # Who and why, and the seat and fan payment are still there for the books.
    erasure = ErasureRequest.objects.get(pk=erasure_id)
    assert erasure.decided_by == compliance
    assert erasure.decided_reason == f"verified erased-{ada.pk}"
    assert erasure.reason == f"E-mail from erased-{ada.pk}"
    assert AuditEvent.objects.filter(action="privacy.erasure_execute", actor=compliance, customer=ada).exists()
    assert Affiliation.objects.filter(customer=ada).exists()
    # Other customers' data untouched.
    assert _export(world["grace"]) == grace_before
    assert _export(world["creator"].customer) == creator_before
    assert cells_containing(["gracehopper1906", "Grace Hopper", "grace@cobol.example"])


def _database_digest() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
            "AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'django_session' AND table_name NOT LIKE 'axes_%%'"
        )
        digest = {}
        for (table,) in cursor.fetchall():
            cursor.execute(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM \"{table}\" t")
            digest[table] = cursor.fetchone()[0]
    return digest


def test_executing_an_erasure_again_changes_nothing(world):
    compliance = world["compliance"]
    client = client_for(compliance)
    response = _post(client, f"{BASE}/erasure-requests", {"customer": "1815", "reason": "letter"})
    erasure_id = response.json()["id"]
    assert _post(client, f"{BASE}/erasure-requests/{erasure_id}/start").json()["state"] == "in_progress"
    assert _post(client, f"{BASE}/erasure-requests/{erasure_id}/execute").status_code == 200
    before = _database_digest()
    again = _post(client, f"{BASE}/erasure-requests/{erasure_id}/execute")
    assert again.status_code == 200 and again.json()["state"] == "done"
    assert _database_digest() == before


def test_a_second_request_for_an_erased_customer_finds_nothing_left_to_erase(world):
    compliance = world["compliance"]
    client = client_for(compliance)
    first = _post(client, f"{BASE}/erasure-requests", {"customer": "1815", "reason": "letter"}).json()["id"]
    _post(client, f"{BASE}/erasure-requests/{first}/execute")
    second = _post(client, f"{BASE}/erasure-requests", {"customer": "1815", "reason": "second letter"}).json()["id"]
    response = _post(client, f"{BASE}/erasure-requests/{second}/execute")
    assert response.status_code == 200
    outcome = response.json()["outcome"]
    assert outcome["pseudonymized_rows"] == {} and outcome["cancelled"] == []


def test_one_open_request_per_customer_and_a_rejection_needs_a_reason(world):
    client = client_for(world["compliance"])
    first = _post(client, f"{BASE}/erasure-requests", {"customer": "1815", "reason": "letter"})
    assert first.status_code == 201
    again = _post(client, f"{BASE}/erasure-requests", {"customer": "1815", "reason": "letter"})
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    erasure_id = first.json()["id"]
    refused = _post(client, f"{BASE}/erasure-requests/{erasure_id}/reject", {"reason": " "})
    assert refused.status_code == 400 and refused.json()["code"] == "reason_required"
    assert ErasureRequest.objects.get(pk=erasure_id).state == "requested"
    rejected = _post(client, f"{BASE}/erasure-requests/{erasure_id}/reject", {"reason": "identity not verified"})
    assert rejected.json()["state"] == "rejected"
    late = _post(client, f"{BASE}/erasure-requests/{erasure_id}/execute")
    assert late.status_code == 409 and late.json()["code"] == "illegal_transition"
    assert Customer.objects.get(external_id="1815").email == EMAIL


def test_the_compliance_queue_is_sorted_by_deadline_and_shows_what_is_overdue(world):
    old = ErasureRequest.objects.create(
        customer=world["grace"],
        reason="letter",
        requested_at=clock.now() - datetime.timedelta(days=40),
        due_at=clock.now() - datetime.timedelta(days=10),
    )
    new = ErasureRequest.objects.create(customer=world["ada"], reason="e-mail")
    client = client_for(world["compliance"])
    listed = client.get(f"{BASE}/erasure-requests").json()
    assert [(r["id"], r["overdue"]) for r in listed] == [(old.pk, True), (new.pk, False)]
    page = client.get("/admin/monetization/erasurerequest/")
    assert page.status_code == 200
    assert b"overdue by 10 day(s)" in page.content
    assert client.get(f"/admin/monetization/erasurerequest/{old.pk}/change/").status_code == 200


# --- the append-only tables -----------------------------------------------------------------------


def test_the_append_only_tables_still_refuse_everything_but_pseudonymization(world):
    event = AuditEvent.objects.get(customer=world["ada"], action="customer.update")

    def refused(*statements, flag=False):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
            if flag:
                c.execute("SELECT set_config('monetization.pseudonymizing', 'on', true)")
            for sql, params in statements:
                c.execute(sql, params)

    refused(("UPDATE monetization_auditevent SET reason = 'x' WHERE id = %s", [event.pk]))
    refused(("DELETE FROM monetization_auditevent WHERE id = %s", [event.pk]))
    # Even with the pseudonymizing flag raised, only the named personal columns may change.
    refused(("UPDATE monetization_auditevent SET action = 'forged', reason = 'x' WHERE id = %s", [event.pk]), flag=True)
    refused(
        ("UPDATE monetization_journalentry SET kind = 'forged' WHERE customer_id = %s", [world["ada"].pk]), flag=True
    )
    refused(("DELETE FROM monetization_journalentry WHERE customer_id = %s", [world["ada"].pk]), flag=True)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as c:
        c.execute(
            "SELECT monetization_pseudonymize('monetization_payment'::regclass, ARRAY[1]::bigint[], "
            "ARRAY['provider_reference'], 'x', 'y')"
        )
    event.refresh_from_db()
    assert event.action == "customer.update"


@pytest.mark.django_db(transaction=True)
def test_two_compliance_officers_executing_at_once_erase_once(make_staff):
    first, second = make_staff("Compliance"), make_staff("Compliance")
    customer = CustomerFactory(handle=HANDLE, email=EMAIL)
    erasure = erasure_request_create(customer=customer, actor=first, reason="letter")
    barrier = threading.Barrier(2)
    states, errors = [], []

    def execute(actor):
        try:
            barrier.wait()
            states.append(erasure_request_execute(erasure=erasure, actor=actor).state)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=execute, args=(actor,)) for actor in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and states == ["done", "done"]
    assert AuditEvent.objects.filter(action="privacy.erasure_execute").count() == 1
    assert Customer.objects.get(pk=customer.pk).handle == f"erased-{customer.pk}"


def test_the_app_role_pseudonymizes_through_the_database_function_and_cannot_update_directly(world):
    event = audit_record(action="customer.note", obj=world["ada"], customer=world["ada"], reason=f"note on {NAME}")
    direct = as_app_role(f"UPDATE monetization_auditevent SET reason = 'x' WHERE id = {event.pk}")
    assert getattr(direct.__cause__, "sqlstate", None) == "42501", direct
    pattern = Subject(customer=world["ada"], identifiers=[NAME]).pattern.replace("'", "''")
    through_function = as_app_role(
        "SELECT monetization_pseudonymize('monetization_auditevent'::regclass, "
        f"ARRAY[{event.pk}]::bigint[], ARRAY['reason'], '{pattern}', 'erased-x')"
    )
    assert through_function is None
    event.refresh_from_db()
    assert event.reason == "note on erased-x"


@pytest.mark.parametrize(
    ("role", "links"),
    [
        ("Compliance", {"export personal data", "log an erasure request"}),
        ("Support", {"log an erasure request"}),
        ("Finance", set()),
    ],
)
def test_the_customer_page_offers_export_and_erasure_to_whom_the_role_allows(world, make_staff, role, links):
    client = APIClient()
    client.force_login(make_staff(role))
    page = client.get(f"/admin/monetization/customer/{world['ada'].pk}/support/").content.decode()
    offered = {link for link in ("export personal data", "log an erasure request") if link in page}
    assert offered == links
    if "log an erasure request" in links:
        form = client.get(f"/admin/monetization/erasurerequest/add/?customer={world['ada'].pk}")
        assert form.status_code == 200 and f'value="{world["ada"].pk}"' in form.content.decode()


@pytest.mark.parametrize("op", ["start", "execute", "reject"])
def test_support_cannot_decide_an_erasure_from_the_admin_either(world, op):
    erasure = erasure_request_create(customer=world["ada"], actor=world["support"], reason="e-mail of 2026-11-30")
    before = AuditEvent.objects.count()
    client = APIClient()
    client.force_login(world["support"])
    page = client.get(f"/admin/monetization/erasurerequest/{erasure.pk}/change/")
    assert page.status_code == 200 and b"erasure-actions" not in page.content
    response = client.post(f"/admin/monetization/erasurerequest/{erasure.pk}/act/{op}/", {"reason": "because"})
    assert response.status_code == 403
    erasure.refresh_from_db()
    assert erasure.state == ErasureRequest.State.REQUESTED and AuditEvent.objects.count() == before
    assert Customer.objects.get(pk=world["ada"].pk).email == EMAIL

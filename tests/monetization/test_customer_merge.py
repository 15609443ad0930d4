"""Staff transfer one purchase or merge two customers: preview, four-eyes, roles, tombstone, books untouched.

Through the staff API and the admin, against the real database; the payment providers are the fakes.
"""

import json
import threading

import jsonschema
import pytest
from django.core.management import call_command
from django.db import connection
from djmoney.money import Money
from rest_framework.test import APIClient

from monetization.event_catalogue import event_schema
from monetization.models import (
    AuditEvent,
    CustomerMerge,
    JournalEntry,
    JournalLine,
    OutboxEvent,
    Payment,
    Provider,
    ProviderIdentity,
    Refund,
)
from monetization.outbox.delivery import event_envelope
from monetization.services.outbox import outbox_relay
from monetization.services.refunds import refund_record_from_provider, refund_request
from subscriptions.models import Grant, Subscription
from subscriptions.services.lifecycle import Cause
from tests.creators.factories import CreatorFactory
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.subscriptions.factories import (
    EntitlementFactory,
    GrantFactory,
    PlanFactory,
    ProductFactory,
    SubscriptionFactory,
)
from tests.verified_orgs.factories import applied_org
from verified_orgs.models import Organization

BASE = "/api/v1/staff/customer-merges"
IDENTITY = {
    Provider.STRIPE: ProviderIdentity.Kind.CUSTOMER_ID,
    Provider.APP_STORE: ProviderIdentity.Kind.ORIGINAL_TRANSACTION_ID,
    Provider.GOOGLE_PLAY: ProviderIdentity.Kind.PURCHASE_TOKEN,
}
PLATFORM = {Provider.STRIPE: "web", Provider.APP_STORE: "ios", Provider.GOOGLE_PLAY: "android"}


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _post(client, url, body, **headers):
    return client.post(url, data=json.dumps(body), content_type="application/json", **headers)


def build_pair(make_payment, make_staff, *, amount: str):
    """A customer with subscriptions on all three providers (a payment each, two refunded in part), a grant,
    an organization it pays for and a creator account; and the survivor with a subscription of its own."""
    boss = make_staff(superuser=True)
    plus = ProductFactory(code="plus", entitlements=[EntitlementFactory(key="edit_post")])
    premium = ProductFactory(code="premium", entitlements=[EntitlementFactory(key="verified_badge")])
    source, survivor = CustomerFactory(), CustomerFactory()
    payments = {}
    for provider in (Provider.STRIPE, Provider.APP_STORE, Provider.GOOGLE_PLAY):
        sub = SubscriptionFactory(
            customer=source, plan=PlanFactory(product=plus), provider=provider, platform=PLATFORM[provider]
        )
        ProviderIdentity.objects.create(
            customer=source, provider=provider, kind=IDENTITY[provider], value=sub.provider_subscription_id
        )
        payments[provider] = make_payment(amount=amount, provider=provider, customer=source, subscription=sub)
    refund_request(
        payment=payments[Provider.STRIPE], amount=Money("1.00", "USD"), reason_code="goodwill", requested_by=boss
    )
    refund_record_from_provider(
        payment=payments[Provider.APP_STORE],
        amount=Money("2.00", "USD"),
        provider_refund_id="apple-refund-1",
        cause=Cause.provider_event("app_store", "notification-1"),
    )
    GrantFactory(customer=source, entitlement=EntitlementFactory(key="early_access"))
    org = applied_org(billing_customer=source)
    creator = CreatorFactory(customer=source)
    own = SubscriptionFactory(customer=survivor, plan=PlanFactory(product=premium))
    make_payment(amount="8.00", customer=survivor, subscription=own)
    return {"source": source, "survivor": survivor, "org": org, "creator": creator, "payments": payments}


def _books():
    lines = JournalLine.objects.order_by("pk").values_list("pk", "entry_id", "account", "amount", "currency")
    entries = JournalEntry.objects.order_by("pk").values_list("pk", "key", "customer_id")
    return list(entries), list(lines)


def _money_rows():
    return (
        sorted(Payment.objects.values_list("pk", "amount", "refunded", "status")),
        sorted(Refund.objects.values_list("pk", "payment_id", "amount", "status")),
    )


def _entitlements(api, customer) -> set[str]:
    response = api.get(f"/api/v1/customers/{customer.external_id}/entitlements")
    assert response.status_code == 200, response.content
    return {e["key"] for e in response.json()["entitlements"]}


@pytest.mark.django_db(transaction=True)
def test_merge_above_the_threshold_waits_for_a_second_person_then_moves_everything(
    fake_providers, make_payment, make_staff, client_with_scopes
):
    pair = build_pair(make_payment, make_staff, amount="40.00")  # 120 USD in all: above the 100 USD threshold
    source, survivor = pair["source"], pair["survivor"]
    api = client_with_scopes("entitlements:read")
    assert _entitlements(api, source) == {"edit_post", "early_access"}  # cached now
    assert _entitlements(api, survivor) == {"verified_badge"}
    books, money = _books(), _money_rows()
    support, finance = make_staff("Support"), make_staff("Finance")
    body = {"source": source.external_id, "target": survivor.external_id}

    preview = _post(client_for(support), f"{BASE}/preview", body)
    assert preview.status_code == 200, preview.content
    moves = {m["what"]: m for m in preview.json()["moves"]}
    assert moves["payments"]["count"] == 3 and moves["payments"]["amounts"] == {"USD": "120.0000"}
    assert moves["refunds"]["count"] == 2 and moves["refunds"]["amounts"] == {"USD": "3.0000"}
    assert moves["subscriptions"]["count"] == 3 and moves["grants"]["count"] == 1
    assert moves["identities"]["count"] == 3 and moves["organizations billed"]["count"] == 1
    assert moves["creator accounts"]["count"] == 1
    assert preview.json()["needs_approval"] is True

    requested = _post(client_for(support), BASE, {**body, "reason": "same person, two logins"})
    assert requested.status_code == 201, requested.content
    merge = requested.json()
    assert merge["status"] == "pending_approval"
    assert merge["preview"] == preview.json()["moves"]
    assert Subscription.objects.filter(customer=source).count() == 3  # nothing moved yet

    # Four-eyes: the requester cannot decide (Support lacks the permission; a superuser requester is refused too).
    assert _post(client_for(support), f"{BASE}/{merge['id']}/approve", {"reason": "me"}).status_code == 403
    boss = make_staff(superuser=True)
    own = _post(client_for(boss), BASE, {**body, "reason": "again"})
    assert own.status_code == 409 and own.json()["code"] == "customer_merge_in_progress"

    approved = _post(client_for(finance), f"{BASE}/{merge['id']}/approve", {"reason": "checked the receipts"})
    assert approved.status_code == 200, approved.content
    assert approved.json()["status"] == "completed" and approved.json()["approved_by"] == finance.pk

    # Every payment, refund and journal line is kept, with its amounts; only the owner changed.
    assert _books() == books and _money_rows() == money
    call_command("ledger_check")
    assert not Payment.objects.filter(customer=source).exists()
    assert not Refund.objects.filter(customer=source).exists()
    assert Subscription.objects.filter(customer=survivor).count() == 4
    assert Grant.objects.get().customer == survivor
    assert ProviderIdentity.objects.filter(customer=survivor).count() == 3
    assert Organization.objects.get(pk=pair["org"].pk).billing_customer == survivor
    pair["creator"].refresh_from_db()
    assert pair["creator"].customer == survivor
    # The merged-away customer's cached entitlements are gone; the survivor's are resolved afresh.
    assert _entitlements(api, source) == set()
    assert _entitlements(api, survivor) == {"verified_badge", "edit_post", "early_access"}
    # Both timelines show it; both customers' consumers hear of it (once the relay has published the rows).
    outbox_relay()
    for customer in (source, survivor):
        assert AuditEvent.objects.filter(customer=customer, action="customer.merge").count() == 1
        assert OutboxEvent.objects.filter(customer=customer, type="CUSTOMER_MERGED").count() == 1
        assert OutboxEvent.objects.filter(customer=customer, type="TRANSFER").count() == 3
    for event in OutboxEvent.objects.filter(type__in=["TRANSFER", "CUSTOMER_MERGED"]):
        jsonschema.validate(event_envelope(event), event_schema(event.type))
    # The tombstone: nothing merges into or out of the merged-away customer again.
    again = _post(
        client_for(support),
        BASE,
        {"source": source.external_id, "target": CustomerFactory().external_id, "reason": "x"},
    )
    assert again.status_code == 409 and again.json()["code"] == "customer_merged"
    assert again.json()["survivor"] == survivor.external_id


@pytest.mark.django_db
def test_a_small_transfer_of_one_purchase_goes_through_at_once(fake_providers, make_payment, make_staff):
    pair = build_pair(make_payment, make_staff, amount="10.00")
    source, survivor = pair["source"], pair["survivor"]
    play = Subscription.objects.get(customer=source, provider=Provider.GOOGLE_PLAY)
    support = make_staff("Support")
    body = {"source": source.external_id, "target": survivor.external_id, "purchase": play.pk}

    preview = _post(client_for(support), f"{BASE}/preview", body).json()
    assert {m["what"]: m["count"] for m in preview["moves"]} == {
        "subscriptions": 1,
        "payments": 1,
        "refunds": 0,
        "disputes": 0,
        "identities": 1,
    }
    response = _post(client_for(support), BASE, {**body, "reason": "bought on the wrong account"})
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "completed" and response.json()["moved"] == preview["moves"]
    assert Subscription.objects.get(pk=play.pk).customer == survivor
    assert Payment.objects.get(pk=pair["payments"][Provider.GOOGLE_PLAY].pk).customer == survivor
    assert Subscription.objects.filter(customer=source).count() == 2  # the others stay
    assert AuditEvent.objects.filter(action="subscription.transfer", actor=support).count() == 2
    # Another customer's purchase is not this customer's to move.
    wrong = _post(client_for(support), BASE, {**body, "reason": "again"})
    assert wrong.status_code == 409 and wrong.json()["code"] == "customer_merge_blocked"


@pytest.mark.django_db
def test_merge_refused_when_both_have_a_creator_account(fake_providers, make_payment, make_staff):
    pair = build_pair(make_payment, make_staff, amount="10.00")
    CreatorFactory(customer=pair["survivor"])
    before = AuditEvent.objects.count()
    body = {"source": pair["source"].external_id, "target": pair["survivor"].external_id, "reason": "r"}
    response = _post(client_for(make_staff("Support")), BASE, body)
    assert response.status_code == 409 and response.json()["code"] == "customer_merge_blocked"
    assert response.json()["blocked"] == ["both customers have a creator account"]
    assert AuditEvent.objects.count() == before and not CustomerMerge.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["Finance", "Compliance", None])
def test_only_support_may_request_a_transfer_or_merge(fake_providers, make_payment, make_staff, role):
    pair = build_pair(make_payment, make_staff, amount="10.00")
    body = {"source": pair["source"].external_id, "target": pair["survivor"].external_id, "reason": "r"}
    client = client_for(make_staff(role))
    for url in (f"{BASE}/preview", BASE):
        response = _post(client, url, body)
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert not CustomerMerge.objects.exists()


@pytest.mark.django_db
def test_a_reason_is_required_and_bad_input_writes_nothing(fake_providers, make_payment, make_staff):
    pair = build_pair(make_payment, make_staff, amount="10.00")
    client = client_for(make_staff("Support"))
    body = {"source": pair["source"].external_id, "target": pair["survivor"].external_id}
    assert _post(client, BASE, {**body, "reason": " "}).json()["code"] in ("invalid_input", "reason_required")
    same = _post(client, BASE, {**body, "target": pair["source"].external_id, "reason": "r"})
    assert same.status_code == 400
    assert _post(client, BASE, {**body, "target": "nobody", "reason": "r"}).status_code == 404
    assert not CustomerMerge.objects.exists()


@pytest.mark.django_db
def test_admin_page_previews_and_requests_a_merge(fake_providers, make_payment, make_staff, client):
    pair = build_pair(make_payment, make_staff, amount="10.00")
    source, survivor = pair["source"], pair["survivor"]
    client.force_login(make_staff("Support"))
    page = client.get(f"/admin/monetization/customer/{source.pk}/support/")
    assert b"transfer or merge" in page.content
    form = {"source": source.external_id, "target": survivor.external_id, "reason": "same person"}
    preview = client.post("/admin/monetization/customermerge/new/", {**form, "op": "preview"})
    assert (
        preview.status_code == 200 and b"move-preview" in preview.content and b"Goes through at once" in preview.content
    )
    done = client.post("/admin/monetization/customermerge/new/", {**form, "op": "request"})
    assert done.status_code == 302
    assert CustomerMerge.objects.get().status == "completed"
    for customer in (source, survivor):
        timeline = client.get(f"/admin/monetization/customer/{customer.pk}/support/")
        assert b"customer.merge" in timeline.content


@pytest.mark.django_db(transaction=True)
def test_concurrent_merges_of_one_pair_one_wins_the_other_is_a_409(fake_providers, make_payment, make_staff):
    pair = build_pair(make_payment, make_staff, amount="10.00")
    source, survivor = pair["source"], pair["survivor"]
    users = [make_staff("Support"), make_staff("Support")]
    bodies = [
        {"source": source.external_id, "target": survivor.external_id, "reason": "one"},
        {"source": survivor.external_id, "target": source.external_id, "reason": "the other way round"},
    ]
    barrier = threading.Barrier(2)
    answers = []

    def attempt(user, body):
        try:
            client = client_for(user)
            barrier.wait()
            answers.append(_post(client, BASE, body))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=args) for args in zip(users, bodies, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.status_code for a in answers) == [201, 409]
    [lost] = [a for a in answers if a.status_code == 409]
    assert lost.json()["code"] == "customer_merged"
    [merge] = CustomerMerge.objects.all()
    assert merge.status == "completed"
    assert Payment.objects.filter(customer=merge.source).count() == 0
    call_command("ledger_check")


@pytest.mark.django_db
def test_four_eyes_nobody_decides_their_own_request_and_a_rejection_moves_nothing(
    fake_providers, make_payment, make_staff
):
    pair = build_pair(make_payment, make_staff, amount="400.00")
    boss, finance = make_staff(superuser=True), make_staff("Finance")
    body = {"source": pair["source"].external_id, "target": pair["survivor"].external_id, "reason": "r"}
    merge = _post(client_for(boss), BASE, body).json()
    assert merge["status"] == "pending_approval"

    own = _post(client_for(boss), f"{BASE}/{merge['id']}/approve", {"reason": "mine"})
    assert own.status_code == 403 and own.json()["code"] == "four_eyes_required"
    rejected = _post(client_for(finance), f"{BASE}/{merge['id']}/reject", {"reason": "two different people"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    late = _post(client_for(finance), f"{BASE}/{merge['id']}/approve", {"reason": "changed my mind"})
    assert late.status_code == 409 and late.json()["code"] == "illegal_transition"
    assert Subscription.objects.filter(customer=pair["source"]).count() == 3
    assert Payment.objects.filter(customer=pair["source"]).count() == 3


@pytest.mark.django_db
def test_an_approved_transfer_reads_as_a_transfer_on_both_timelines(fake_providers, make_payment, make_staff, client):
    pair = build_pair(make_payment, make_staff, amount="150.00")  # one purchase above the 100 USD threshold
    source, survivor = pair["source"], pair["survivor"]
    play = Subscription.objects.get(customer=source, provider=Provider.GOOGLE_PLAY)
    support, finance = make_staff("Support"), make_staff("Finance")
    client.force_login(support)
    form = {"source": source.external_id, "target": survivor.external_id, "purchase": play.pk, "reason": "wrong login"}
    assert client.post("/admin/monetization/customermerge/new/", {**form, "op": "request"}).status_code == 302
    merge = CustomerMerge.objects.get()
    assert merge.status == "pending_approval"
    client.force_login(finance)
    decided = client.post(
        "/admin/monetization/customermerge/awaiting-approval/",
        {"target": merge.pk, "op": "approve", "reason": "receipt checked"},
    )
    assert decided.status_code == 302
    assert Subscription.objects.get(pk=play.pk).customer == survivor

    # The approval is recorded once done: it names the approver and reads pending_approval -> completed.
    for customer in (source, survivor):
        approval = AuditEvent.objects.get(customer=customer, action="customer_transfer.approve")
        assert approval.actor == finance and approval.reason == "receipt checked"
        assert (approval.before["status"], approval.after["status"]) == ("pending_approval", "completed")
        page = client.get(f"/admin/monetization/customer/{customer.pk}/support/").content.decode()
        assert f"subscription {play.pk} moved from {source.external_id} to {survivor.external_id}" in page
        assert "pending_approval → completed" in page
        assert "merged into" not in page  # one purchase moved; nobody was merged

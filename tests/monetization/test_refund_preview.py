"""Refund preview: what the staff API (and the admin's preview step) says a refund will do is what the
refund then does, field by field, for a consumer, an organization admin and a fan of a creator."""

import json
import uuid
from decimal import Decimal

import pytest
from djmoney.money import Money
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from creators.models import CreatorClawback, CreatorSubscriptionLink
from monetization.models import AuditEvent, JournalEntry, Payment, Refund
from subscriptions.entitlements import resolve_entitlements
from subscriptions.models import Product, Subscription
from subscriptions.services.payments import subscription_payment_record
from tests.creators.factories import make_creator
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SubscriptionFactory
from tests.verified_orgs.factories import verified_org
from verified_orgs.models import OrgCreditNote, OrgInvoice
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite

pytestmark = pytest.mark.django_db

BASE = "/api/v1/staff/refunds"


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _post(client, url, body, **headers):
    return client.post(url, data=json.dumps(body), content_type="application/json", **headers)


def rows() -> tuple[int, int, int]:
    return Refund.objects.count(), JournalEntry.objects.count(), AuditEvent.objects.count()


def preview_then_refund(client, payment, amount: str | None, revoke: str) -> tuple[dict, Refund]:
    """The preview (which writes nothing), then the same refund requested through the API."""
    body = {"payment_id": payment.pk, "revoke_access": revoke}
    if amount is not None:
        body["amount"] = amount
    before = rows()
    response = _post(client, f"{BASE}/preview", body)
    assert response.status_code == 200, response.content
    assert rows() == before
    created = _post(
        client, BASE, {**body, "reason_code": "requested_by_customer"}, HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
    )
    assert created.status_code == 201, created.content
    return response.json(), Refund.objects.get(pk=created.json()["id"])


def assert_money_matches(preview: dict, refund: Refund) -> None:
    assert refund.status == Refund.Status.SUCCEEDED and not preview["needs_approval"]
    assert Decimal(preview["amount"]) == refund.amount.amount
    lines = {line.account: line.amount for line in JournalEntry.objects.get(key=f"refund:{refund.pk}").lines.all()}
    assert {line["account"]: Decimal(line["amount"]) for line in preview["ledger"]} == lines
    assert Decimal(preview["tax_reversed"]) == lines.get("liability:tax_payable", Decimal(0))
    assert Decimal(preview["commission_reversed"]) == -lines.get("expense:store_commission", Decimal(0))
    assert Decimal(preview["cash_out"]) == -lines[f"cash:{refund.payment.provider}"]
    assert Decimal(preview["fee_reversed"]) == 0


def keys(entitlements) -> set[str]:
    return {e["key"] if isinstance(e, dict) else e.key for e in entitlements}


def test_consumer_preview_matches_the_refund(fake_providers, make_payment, make_staff):
    premium, extra = EntitlementFactory(key="premium"), EntitlementFactory(key="extra_storage")
    sub = SubscriptionFactory(plan=PlanFactory(product=ProductFactory(entitlements=[premium, extra])))
    # The same "extra_storage" also comes from a grant: the customer keeps it.
    sub.customer.grants.create(entitlement=extra, reason="goodwill")
    payment = make_payment(amount="60.00", tax="10.00", customer=sub.customer, subscription=sub)
    client = client_for(make_staff("Support"))

    preview, refund = preview_then_refund(client, payment, "30.00", "now")

    assert_money_matches(preview, refund)
    assert Decimal(preview["tax_reversed"]) == 5 and Decimal(preview["refundable"]) == 60
    part = preview["effects"]["subscription"]
    assert (part["subscription"], part["transition"], part["access_ends"]) == (sub.pk, "revoke", "now")
    assert keys(part["entitlements_ending"]) == {"premium"} and part["entitlements_kept"] == ["extra_storage"]
    sub.refresh_from_db()
    assert sub.state == Subscription.State.REVOKED
    after = keys(resolve_entitlements(sub.customer_id))
    assert "premium" not in after and "extra_storage" in after
    assert "organization" not in preview["effects"] and "creator" not in preview["effects"]


def test_preview_of_a_cancel_at_period_end_and_of_no_change(fake_providers, make_payment, make_staff):
    premium = EntitlementFactory(key="premium")
    sub = SubscriptionFactory(plan=PlanFactory(product=ProductFactory(entitlements=[premium])))
    first = make_payment(amount="20.00", customer=sub.customer, subscription=sub)
    client = client_for(make_staff("Support"))

    preview, refund = preview_then_refund(client, first, "5.00", "none")
    assert_money_matches(preview, refund)
    assert (preview["effects"]["subscription"]["transition"], preview["effects"]["subscription"]["access_ends"]) == (
        "",
        "unchanged",
    )

    preview, refund = preview_then_refund(client, first, None, "at_period_end")
    assert_money_matches(preview, refund)
    part = preview["effects"]["subscription"]
    assert (part["transition"], part["access_ends"]) == ("cancel", "period_end")
    assert part["access_ends_at"] == sub.current_period_end.isoformat()
    sub.refresh_from_db()
    assert sub.state == Subscription.State.CANCELED
    assert "premium" in keys(resolve_entitlements(sub.customer_id))  # until the period end


def test_org_admin_preview_matches_the_refund(stripe_billing_double, make_staff, settings):
    settings.REFUND_APPROVAL_THRESHOLDS = {"USD": "5000"}
    org = verified_org()
    admin = org.billing_customer
    affiliates = []
    for _ in range(2):
        customer = CustomerFactory()
        _, token = affiliation_invite(organization=org, customer=customer, invited_by=admin)
        affiliation_accept(token=token, customer=customer)
        affiliates.append(customer)
    invoice = OrgInvoice.objects.get(organization=org)
    payment, _ = subscription_payment_record(
        customer=admin,
        provider="stripe",
        provider_reference=invoice.provider_invoice_id,
        amount=Money("1100.00", "USD"),
        subscription=org.subscription,
    )
    assert "org_gold_badge" in keys(resolve_entitlements(admin.pk))
    client = client_for(make_staff("Support"))

    preview, refund = preview_then_refund(client, payment, None, "now")

    assert_money_matches(preview, refund)
    part = preview["effects"]["organization"]
    note = OrgCreditNote.objects.get(reference=f"refund:{refund.pk}")
    assert (part["credit_note"]["invoice"], part["credit_note"]["currency"]) == (note.invoice.number, "USD")
    assert Decimal(part["credit_note"]["amount"]) == note.amount == 1100
    assert part["seats_losing_access"] == 2
    ending = {b["customer"]: keys(b["entitlements_ending"]) for b in part["badges_ending"]}
    assert ending == {
        admin.external_id: {"org_gold_badge"},
        affiliates[0].external_id: {"affiliate_badge"},
        affiliates[1].external_id: {"affiliate_badge"},
    }
    for customer in (admin, *affiliates):
        assert not keys(resolve_entitlements(customer.pk)) & {"org_gold_badge", "affiliate_badge"}


class Fan:
    def __init__(self):
        self.creator = make_creator()
        self.plan = PlanFactory(product=ProductFactory(kind=Product.Kind.CREATOR))
        CreatorSubscriptionLink.objects.create(plan=self.plan, creator=self.creator)
        self.n = 0

    def pay(self, amount: str, tax: str = "0") -> Payment:
        self.n += 1
        fan = CustomerFactory()
        sub = SubscriptionFactory(customer=fan, plan=self.plan)
        payment, _ = subscription_payment_record(
            customer=fan,
            provider="stripe",
            provider_reference=f"in_fan_{self.creator.pk}_{self.n}",
            amount=Money(amount, "USD"),
            tax=Money(tax, "USD"),
            subscription=sub,
        )
        return payment


def test_fan_preview_matches_the_refund(fake_providers, make_staff):
    payment = Fan().pay("20.00", tax="2.00")
    client = client_for(make_staff("Support"))

    preview, refund = preview_then_refund(client, payment, "7.00", "none")

    assert_money_matches(preview, refund)
    clawback = CreatorClawback.objects.get(reference=f"refund:{refund.pk}")
    part = preview["effects"]["creator"]
    assert (part["creator"], Decimal(part["clawback"]), part["currency"]) == (
        clawback.creator_id,
        clawback.amount,
        clawback.currency,
    )
    assert Decimal(part["clawback"]) > 0


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cents=st.integers(min_value=100, max_value=20000),
    tax_percent=st.integers(min_value=0, max_value=25),
    parts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=5),
)
def test_any_sequence_of_partial_refunds_is_previewed_exactly(
    fake_providers, make_staff, settings, cents, tax_percent, parts
):
    """Each partial refund of a fan payment, previewed just before it: the money and the creator's clawback
    (rounded against everything reversed so far) are what the refund then books."""
    settings.REFUND_APPROVAL_THRESHOLDS = {"USD": "1000"}
    settings.REFUND_APPROVAL_MAX_PER_CUSTOMER_30D = 1000
    amount = Decimal(cents) / 100
    tax = (amount * tax_percent / 100).quantize(Decimal("0.01"))
    payment = Fan().pay(str(amount), tax=str(tax))
    client = client_for(make_staff("Support"))
    total = sum(parts)
    remaining = amount
    for i, part in enumerate(parts):
        step = remaining if i == len(parts) - 1 else (amount * part / total).quantize(Decimal("0.01"))
        step = min(step, remaining)
        if step <= 0:
            continue
        preview, refund = preview_then_refund(client, payment, str(step), "none")
        assert_money_matches(preview, refund)
        clawback = CreatorClawback.objects.get(reference=f"refund:{refund.pk}")
        assert Decimal(preview["effects"]["creator"]["clawback"]) == clawback.amount
        remaining -= step


def test_preview_refusals_match_the_request_and_need_the_permission(fake_providers, make_payment, make_staff):
    payment = make_payment(amount="10.00")
    support = client_for(make_staff("Support"))
    too_much = _post(support, f"{BASE}/preview", {"payment_id": payment.pk, "amount": "11.00"})
    assert too_much.status_code == 400 and too_much.json()["code"] == "refund_exceeds_refundable"
    finer = _post(support, f"{BASE}/preview", {"payment_id": payment.pk, "amount": "1.001"})
    assert finer.status_code == 400
    missing = _post(support, f"{BASE}/preview", {"payment_id": 10**9})
    assert missing.status_code == 404
    compliance = client_for(make_staff("Compliance"))
    denied = _post(compliance, f"{BASE}/preview", {"payment_id": payment.pk})
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"


def test_preview_says_when_a_refund_waits_for_approval(fake_providers, make_payment, make_staff):
    payment = make_payment(amount="500.00")
    preview = _post(client_for(make_staff("Support")), f"{BASE}/preview", {"payment_id": payment.pk}).json()
    assert preview["needs_approval"] is True and "threshold" in preview["approval_reason"]


def test_admin_preview_step_then_confirm(fake_providers, make_payment, make_staff, client):
    premium = EntitlementFactory(key="premium")
    sub = SubscriptionFactory(plan=PlanFactory(product=ProductFactory(entitlements=[premium])))
    payment = make_payment(amount="20.00", tax="2.00", customer=sub.customer, subscription=sub)
    client.force_login(make_staff("Support"))
    form = {
        "op": "refund",
        "payment": payment.pk,
        "amount": "10.00",
        "reason_code": "goodwill",
        "revoke_access": "now",
        "note": "asked twice",
        "idempotency_key": "k-preview",
        "preview": "1",
    }
    before = rows()
    page = client.post(f"/admin/monetization/customer/{sub.customer_id}/support/", form)
    assert page.status_code == 200 and rows() == before
    html = page.content.decode()
    assert 'id="refund-preview"' in html and "ends now" in html and "<code>premium</code>" in html
    assert "Confirm refund" in html and 'name="idempotency_key" value="k-preview"' in html
    confirm = {k: v for k, v in form.items() if k not in ("op", "payment", "preview")}
    done = client.post(f"/admin/monetization/customer/payment/{payment.pk}/refund/", confirm)
    assert done.status_code == 302
    refund = Refund.objects.get(payment=payment)
    assert (refund.amount, refund.status, refund.revoke_access) == (Money("10.00", "USD"), "succeeded", "now")
    # The confirm page posted twice (a double click) refunds once.
    client.post(f"/admin/monetization/customer/payment/{payment.pk}/refund/", confirm)
    assert Refund.objects.filter(payment=payment).count() == 1

"""Stripe disputes over HTTP with signed payloads: the lifecycle on the payment, the ledger, Finance's queue."""

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from monetization.models import Dispute, JournalLine, WebhookEvent
from monetization.providers.stripe import payloads
from monetization.roles import sync_roles
from monetization.services.disputes import DISPUTE_FEES, DISPUTES
from monetization.services.ledger import ledger_report
from subscriptions.models import Subscription

from .support import fixture, post_stripe

pytestmark = pytest.mark.django_db(transaction=True)
SUB = "sub_1QwebPremium0000000001"
T = 1767400000
DUE = T + 7 * 86400
WITHDRAWAL = payloads.dispute_balance_transaction(txn_id="txn_dw1", amount=-800, fee=1500, created=T)
REINSTATEMENT = payloads.dispute_balance_transaction(txn_id="txn_dr1", amount=800, fee=0, created=T + 3600)


def _dispute_event(event_id: str, event_type: str, status: str, created: int, movements=(), dispute_id="dp_1") -> dict:
    obj = payloads.dispute(
        dispute_id=dispute_id,
        charge_id="ch_3QwebCharge000000000001",
        payment_intent="pi_3QwebIntent000000000001",
        amount=800,
        status=status,
        created=T,
        due_by=DUE,
        balance_transactions=list(movements),
    )
    return payloads.event(event_id=event_id, event_type=event_type, created=created, obj=obj, livemode=False)


CREATED = _dispute_event("evt_d1", "charge.dispute.created", "needs_response", T)
WITHDRAWN = _dispute_event("evt_d2", "charge.dispute.funds_withdrawn", "needs_response", T + 1, [WITHDRAWAL])
REVIEW = _dispute_event("evt_d3", "charge.dispute.updated", "under_review", T + 600, [WITHDRAWAL])
REINSTATED = _dispute_event("evt_d4", "charge.dispute.funds_reinstated", "won", T + 3600, [WITHDRAWAL, REINSTATEMENT])
WON = _dispute_event("evt_d5", "charge.dispute.closed", "won", T + 3601, [WITHDRAWAL, REINSTATEMENT])
LOST = _dispute_event("evt_d6", "charge.dispute.closed", "lost", T + 3601, [WITHDRAWAL])


@pytest.fixture
def paid(client, catalog, customers, stripe_http):
    stripe_http.responses[("get", "/v1/invoice_payments")] = fixture("stripe", "invoice_payments.list")
    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    post_stripe(client, fixture("stripe", "invoice.paid"))


def _balance(account: str) -> Decimal:
    return sum(JournalLine.objects.filter(account=account).values_list("amount", flat=True), Decimal(0))


@pytest.mark.parametrize(
    "events",
    [
        (CREATED, WITHDRAWN, REVIEW, LOST),
        (LOST, REVIEW, CREATED, WITHDRAWN),
        (WITHDRAWN, LOST, WITHDRAWN, CREATED),
    ],
)
def test_a_lost_dispute_books_the_withdrawal_and_fee_once_in_any_order(client, paid, events):
    for event in events:
        assert post_stripe(client, event).status_code == 200
    dispute = Dispute.objects.get()
    assert dispute.status == Dispute.Status.LOST and dispute.closed_at is not None
    assert dispute.evidence_due_by == dt.datetime.fromtimestamp(DUE, tz=dt.UTC)
    assert dispute.withdrawn.amount == Decimal("8.00") and dispute.fees.amount == Decimal("15.00")
    assert _balance(DISPUTES) == Decimal("8.00") and _balance(DISPUTE_FEES) == Decimal("15.00")
    assert _balance("cash:stripe") == Decimal("8.00") - Decimal("23.00")  # the capture, less amount and fee withdrawn
    assert ledger_report().balanced
    # Stripe leaves the subscription running through a chargeback; so do we (stripe.rules.ACCESS_RULES).
    assert Subscription.objects.get(provider_subscription_id=SUB).state == Subscription.State.ACTIVE
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"applied"}


def test_a_won_dispute_reverses_the_withdrawal(client, paid):
    for event in (CREATED, WITHDRAWN, REVIEW, REINSTATED, WON):
        post_stripe(client, event)
    dispute = Dispute.objects.get()
    assert dispute.status == Dispute.Status.WON
    assert dispute.withdrawn.amount == Decimal("0") and dispute.fees.amount == Decimal("15.00")
    assert _balance(DISPUTES) == Decimal("0") and _balance(DISPUTE_FEES) == Decimal("15.00")
    assert ledger_report().balanced


def test_a_dispute_before_its_invoice_waits_for_it(client, catalog, customers, stripe_http):
    stripe_http.responses[("get", "/v1/invoice_payments")] = fixture("stripe", "invoice_payments.list")
    post_stripe(client, WITHDRAWN)
    event = WebhookEvent.objects.get(event_id="evt_d2")
    assert event.status == WebhookEvent.Status.WAITING and event.waiting_for == "in_1QwebInvoice00000000001"
    post_stripe(client, fixture("stripe", "customer.subscription.created"))
    post_stripe(client, fixture("stripe", "invoice.paid"))
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.APPLIED
    assert Dispute.objects.get().withdrawn.amount == Decimal("8.00")


def test_finance_sees_the_queue_by_evidence_due_date_and_support_does_not(client, paid, django_user_model):
    later = _dispute_event("evt_later", "charge.dispute.created", "needs_response", T, dispute_id="dp_later")
    later["data"]["object"]["evidence_details"]["due_by"] = DUE + 86400
    for event in (later, CREATED):
        post_stripe(client, event)
    sync_roles()
    finance = django_user_model.objects.create_user("fin", password="x", is_staff=True)
    finance.groups.add(Group.objects.get(name="Finance"))
    support = django_user_model.objects.create_user("sup", password="x", is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))

    client.force_login(finance)
    page = client.get("/admin/monetization/dispute/")
    assert page.status_code == 200
    listed = [d.provider_dispute_id for d in page.context["cl"].result_list]
    assert listed == ["dp_1", "dp_later"]
    client.force_login(support)
    assert client.get("/admin/monetization/dispute/").status_code == 403

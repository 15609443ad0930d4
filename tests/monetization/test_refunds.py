"""Refund services: thresholds, four-eyes, provider failure and retry, ledger, concurrency, invariants."""

import datetime
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction
from djmoney.money import Money
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from monetization import clock
from monetization.errors import DomainError, PermissionDenied
from monetization.models import AuditEvent, JournalEntry, JournalLine, Payment, Provider, Refund
from monetization.providers.base import ProviderError
from monetization.services.ledger import ledger_report
from monetization.services.refunds import (
    payment_refundable,
    refund_approve,
    refund_record_from_provider,
    refund_reject,
    refund_request,
    refund_retry,
)
from subscriptions.models import Subscription
from subscriptions.services.lifecycle import Cause
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.subscriptions.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db


def usd(x) -> Money:
    return Money(Decimal(str(x)), "USD")


def lines_of(refund):
    entry = JournalEntry.objects.get(key=f"refund:{refund.pk}")
    return {line.account: line.amount for line in entry.lines.all()}


def test_small_refund_is_auto_approved_executed_and_posted(fake_providers, make_payment, make_staff):
    support = make_staff("Support")
    payment = make_payment(amount="50.00", tax="5.00")
    refund = refund_request(
        payment=payment, amount=usd("20.00"), reason_code="goodwill", note="late", requested_by=support
    )
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.provider_refund_id.startswith("re_fake_")
    payment.refresh_from_db()
    assert payment.refunded == usd("20.00")
    assert payment.status == Payment.Status.PARTIALLY_REFUNDED
    # Tax share 20 * 5/50 = 2 comes out of tax payable; the rest against revenue; cash leaves Stripe.
    assert lines_of(refund) == {
        "contra_revenue:refunds": Decimal("18.0000"),
        "liability:tax_payable": Decimal("2.0000"),
        "cash:stripe": Decimal("-20.0000"),
    }
    assert ledger_report().balanced
    actions = list(
        AuditEvent.objects.filter(object_id=str(refund.pk), object_type="monetization.refund").values_list(
            "action", flat=True
        )
    )
    assert {"refund.request", "refund.submit", "refund.succeed"} <= set(actions)
    assert fake_providers("stripe").calls[-1][1]["key"] == refund.idempotency_key


def test_full_refund_marks_payment_refunded(fake_providers, make_payment, make_staff):
    payment = make_payment(amount="50.00")
    refund_request(payment=payment, amount=usd(50), reason_code="duplicate", requested_by=make_staff("Support"))
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert payment_refundable(payment) == usd(0)


@pytest.mark.parametrize("amount", ["0", "-1", "50.01", "0.001"])
def test_bad_amounts_are_refused_and_nothing_written(fake_providers, make_payment, make_staff, amount):
    payment = make_payment(amount="50.00")
    audits = AuditEvent.objects.count()
    with pytest.raises(DomainError) as err:
        refund_request(payment=payment, amount=usd(amount), reason_code="goodwill", requested_by=make_staff("Support"))
    assert err.value.status == 400
    assert Refund.objects.count() == 0
    assert AuditEvent.objects.count() == audits


def test_exceeding_refundable_has_a_stable_code(fake_providers, make_payment, make_staff):
    support = make_staff("Support")
    payment = make_payment(amount="50.00")
    refund_request(payment=payment, amount=usd(30), reason_code="goodwill", requested_by=support)
    with pytest.raises(DomainError) as err:
        refund_request(payment=payment, amount=usd("20.01"), reason_code="goodwill", requested_by=support)
    assert err.value.code == "refund_exceeds_refundable"
    assert err.value.extra["refundable"] == "20.0000"


def test_app_store_refund_is_refused_before_anything_is_written(fake_providers, make_payment, make_staff):
    payment = make_payment(amount="9.99", provider=Provider.APP_STORE)
    audits = AuditEvent.objects.count()
    with pytest.raises(DomainError) as err:
        refund_request(payment=payment, amount=usd("9.99"), reason_code="goodwill", requested_by=make_staff("Support"))
    assert err.value.code == "refund_unsupported_by_provider"
    assert err.value.status == 422
    assert Refund.objects.count() == 0 and AuditEvent.objects.count() == audits
    assert fake_providers("app_store").calls == []


def test_amount_threshold_needs_four_eyes(fake_providers, make_payment, make_staff):
    support, finance, finance2 = make_staff("Support"), make_staff("Finance"), make_staff("Finance")
    payment = make_payment(amount="300.00")
    refund = refund_request(payment=payment, amount=usd("100.01"), reason_code="service_outage", requested_by=support)
    assert refund.status == Refund.Status.PENDING_APPROVAL
    assert fake_providers("stripe").calls == []
    # The reservation holds while it waits.
    assert payment_refundable(payment) == usd("199.99")
    # Support cannot approve at all; Finance can, but never their own request.
    with pytest.raises(PermissionDenied):
        refund_approve(refund=refund, approved_by=support, reason="ok")
    own = (
        refund_request(payment=payment, amount=usd(150), reason_code="goodwill", requested_by=finance)
        if finance.has_perm("monetization.request_refund")
        else None
    )
    assert own is None  # Finance does not request refunds
    refund = refund_approve(refund=refund, approved_by=finance2, reason="outage confirmed")
    assert refund.status == Refund.Status.SUCCEEDED
    assert refund.approved_by == finance2


def test_requester_can_never_approve_their_own(fake_providers, make_payment, make_staff):
    boss = make_staff(superuser=True)
    payment = make_payment(amount="500.00")
    refund = refund_request(payment=payment, amount=usd(400), reason_code="fraudulent", requested_by=boss)
    assert refund.status == Refund.Status.PENDING_APPROVAL
    with pytest.raises(PermissionDenied) as err:
        refund_approve(refund=refund, approved_by=boss, reason="me")
    assert err.value.code == "refund_self_approval"
    with pytest.raises(PermissionDenied):
        refund_reject(refund=refund, rejected_by=boss, reason="me")
    refund.refresh_from_db()
    assert refund.status == Refund.Status.PENDING_APPROVAL


def test_database_refuses_self_approval(fake_providers, make_payment, make_staff):
    boss = make_staff(superuser=True)
    refund = refund_request(payment=make_payment(amount="500"), amount=usd(400), reason_code="other", requested_by=boss)
    with pytest.raises(IntegrityError), transaction.atomic():
        Refund.objects.filter(pk=refund.pk).update(approved_by=boss)


def test_count_threshold_per_customer_in_30_days(fake_providers, make_payment, make_staff, settings):
    settings.REFUND_APPROVAL_MAX_PER_CUSTOMER_30D = 3
    support = make_staff("Support")
    first = make_payment(amount="10")
    customer = first.customer
    payments = [first] + [make_payment(amount="10", customer=customer) for _ in range(4)]
    start = clock.now()
    with clock.frozen(start):
        statuses = [
            refund_request(payment=p, amount=usd(1), reason_code="goodwill", requested_by=support).status
            for p in payments[:4]
        ]
    assert statuses == ["succeeded", "succeeded", "succeeded", "pending_approval"]
    with clock.frozen(start + datetime.timedelta(days=31)):
        assert (
            refund_request(payment=payments[4], amount=usd(1), reason_code="goodwill", requested_by=support).status
            == "succeeded"
        )


def test_reject_releases_the_reservation(fake_providers, make_payment, make_staff):
    support, finance = make_staff("Support"), make_staff("Finance")
    payment = make_payment(amount="300")
    refund = refund_request(payment=payment, amount=usd(250), reason_code="goodwill", requested_by=support)
    assert payment_refundable(payment) == usd(50)
    refund = refund_reject(refund=refund, rejected_by=finance, reason="not eligible")
    assert refund.status == Refund.Status.REJECTED
    assert payment_refundable(payment) == usd(300)
    with pytest.raises(DomainError):
        refund_approve(refund=refund, approved_by=finance, reason="changed my mind")


def test_reason_is_required_to_decide(fake_providers, make_payment, make_staff):
    refund = refund_request(
        payment=make_payment(amount="300"), amount=usd(250), reason_code="goodwill", requested_by=make_staff("Support")
    )
    with pytest.raises(DomainError) as err:
        refund_approve(refund=refund, approved_by=make_staff("Finance"), reason="  ")
    assert err.value.code == "reason_required"


def test_provider_failure_leaves_refund_failed_retryable_and_ledger_untouched(fake_providers, make_payment, make_staff):
    support = make_staff("Support")
    payment = make_payment(amount="50")
    provider = fake_providers("stripe")
    provider.fail_next["refund"] = ProviderError("card_declined upstream", code="processing_error", retryable=True)
    entries = JournalEntry.objects.count()
    refund = refund_request(payment=payment, amount=usd(20), reason_code="goodwill", requested_by=support)
    assert refund.status == Refund.Status.FAILED
    assert refund.failure_code == "processing_error"
    assert JournalEntry.objects.count() == entries
    payment.refresh_from_db()
    assert payment.refunded == usd(0) and payment.status == Payment.Status.SUCCEEDED
    # A failed refund no longer reserves its amount.
    assert payment_refundable(payment) == usd(50)
    refund = refund_retry(refund=refund, actor=support, reason="provider back")
    assert refund.status == Refund.Status.SUCCEEDED and refund.attempts == 2
    keys = [c[1]["key"] for c in provider.calls if c[0] == "refund"]
    assert keys == [refund.idempotency_key, refund.idempotency_key]
    assert JournalEntry.objects.filter(key=f"refund:{refund.pk}").count() == 1
    with pytest.raises(DomainError):
        refund_retry(refund=refund, actor=support, reason="again")


def test_refund_recorded_from_provider_is_idempotent(fake_providers, make_payment):
    payment = make_payment(amount="9.99", provider=Provider.APP_STORE)
    cause = Cause.provider_event("app_store", "notif-1", reason="REFUND")
    refund, created = refund_record_from_provider(
        payment=payment, amount=usd("9.99"), provider_refund_id="tx-1", cause=cause
    )
    again, created_again = refund_record_from_provider(
        payment=payment, amount=usd("9.99"), provider_refund_id="tx-1", cause=cause
    )
    assert created and not created_again and again.pk == refund.pk
    assert refund.status == Refund.Status.SUCCEEDED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert JournalEntry.objects.filter(key=f"refund:{refund.pk}").count() == 1
    assert ledger_report().balanced
    assert AuditEvent.objects.filter(action="refund.record_from_provider", actor_label="app_store:notif-1").exists()


@pytest.mark.parametrize(
    ("revoke", "state"), [("now", Subscription.State.REVOKED), ("at_period_end", Subscription.State.CANCELED)]
)
def test_refund_revokes_access(fake_providers, make_payment, make_staff, revoke, state):
    sub = SubscriptionFactory()
    payment = make_payment(amount="8", customer=sub.customer, subscription=sub)
    refund_request(
        payment=payment,
        amount=usd(8),
        reason_code="requested_by_customer",
        requested_by=make_staff("Support"),
        revoke_access=revoke,
    )
    sub.refresh_from_db()
    assert sub.state == state
    if state == Subscription.State.CANCELED:
        assert sub.auto_renew is False


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_refunds_never_exceed_captured(fake_providers, make_payment, make_staff, settings):
    settings.REFUND_APPROVAL_MAX_PER_CUSTOMER_30D = 1000
    support = make_staff("Support")
    payment = make_payment(amount="100.00")
    barrier = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt():
        try:
            barrier.wait()
            refund = refund_request(payment=payment, amount=usd(10), reason_code="goodwill", requested_by=support)
            result = refund.status
        except DomainError as exc:
            result = exc.code
        except Exception as exc:  # surfaced in the assertion message rather than lost with the thread
            result = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tally = Counter(str(o) for o in outcomes)
    assert tally == {"succeeded": 10, "refund_exceeds_refundable": 40}, tally
    payment.refresh_from_db()
    assert payment.refunded == usd(100)
    assert payment.status == Payment.Status.REFUNDED
    assert Refund.objects.filter(status="succeeded").count() == 10
    assert ledger_report().balanced


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amounts=st.lists(st.integers(min_value=1, max_value=6000), min_size=1, max_size=12), tax=st.integers(0, 900))
def test_any_sequence_of_partial_refunds_stays_within_captured_and_balanced(
    fake_providers, make_payment, make_staff, settings, amounts, tax
):
    settings.REFUND_APPROVAL_MAX_PER_CUSTOMER_30D = 1000
    settings.REFUND_APPROVAL_THRESHOLDS = {"USD": "1000"}
    support = make_staff("Support")
    payment = make_payment(amount="99.99", tax=str(Decimal(tax) / 100))
    succeeded = Decimal(0)
    for cents in amounts:
        amount = Decimal(cents) / 100
        try:
            refund = refund_request(payment=payment, amount=usd(amount), reason_code="goodwill", requested_by=support)
        except DomainError as exc:
            assert exc.code == "refund_exceeds_refundable"
            assert amount > Decimal("99.99") - succeeded
            continue
        assert refund.status == "succeeded"
        succeeded += amount
    payment.refresh_from_db()
    assert payment.refunded.amount == succeeded <= Decimal("99.99")
    total = sum(
        JournalLine.objects.filter(
            entry__key__startswith="refund:", entry__customer=payment.customer, account="cash:stripe"
        ).values_list("amount", flat=True),
        Decimal(0),
    )
    assert -total == succeeded
    assert ledger_report().balanced


def test_provider_notification_overtaking_our_answer_books_once(fake_providers, make_payment, make_staff):
    """charge.refunded can arrive before the refund call returns: one refund, one ledger entry."""
    support = make_staff("Support")
    payment = make_payment(amount="50")
    provider = fake_providers("stripe")
    real_refund = provider.refund

    def refund_and_notify(**kwargs):
        result = real_refund(**kwargs)
        refund_record_from_provider(
            payment=payment,
            amount=kwargs["amount"],
            provider_refund_id=result.provider_refund_id,
            cause=Cause.provider_event("stripe", "evt_charge_refunded"),
        )
        return result

    provider.refund = refund_and_notify
    refund = refund_request(payment=payment, amount=usd(20), reason_code="goodwill", requested_by=support)
    assert refund.status == Refund.Status.SUCCEEDED
    assert Refund.objects.count() == 1
    payment.refresh_from_db()
    assert payment.refunded == usd(20)
    assert JournalEntry.objects.filter(kind="refund").count() == 1
    # The late duplicate notification changes nothing either.
    again, created = refund_record_from_provider(
        payment=payment,
        amount=usd(20),
        provider_refund_id=refund.provider_refund_id,
        cause=Cause.provider_event("stripe", "x"),
    )
    assert not created and again.pk == refund.pk
    assert ledger_report().balanced


def test_asynchronous_provider_refund_waits_for_the_notification(fake_providers, make_payment, make_staff):
    from monetization.providers.base import RefundResult

    support = make_staff("Support")
    payment = make_payment(amount="50")
    provider = fake_providers("stripe")
    provider.refund = lambda **kw: RefundResult(provider_refund_id="re_async_1", amount=kw["amount"], status="pending")
    refund = refund_request(payment=payment, amount=usd(20), reason_code="goodwill", requested_by=support)
    assert refund.status == Refund.Status.SUBMITTED and refund.provider_refund_id == "re_async_1"
    assert not JournalEntry.objects.filter(kind="refund").exists()
    assert payment_refundable(payment) == usd(30)  # still reserved
    booked, created = refund_record_from_provider(
        payment=payment, amount=usd(20), provider_refund_id="re_async_1", cause=Cause.provider_event("stripe", "evt_1")
    )
    assert not created and booked.pk == refund.pk and booked.status == Refund.Status.SUCCEEDED
    assert JournalEntry.objects.filter(key=f"refund:{refund.pk}").count() == 1


def test_stuck_submission_can_be_retried_with_the_same_key(fake_providers, make_payment, make_staff, settings):
    support = make_staff("Support")
    payment = make_payment(amount="50")
    provider = fake_providers("stripe")
    real_refund = provider.refund

    def crash(**kwargs):
        raise KeyboardInterrupt  # the worker died mid-call: the refund stays submitted

    provider.refund = crash
    with pytest.raises(KeyboardInterrupt):
        refund_request(payment=payment, amount=usd(20), reason_code="goodwill", requested_by=support)
    refund = Refund.objects.get()
    assert refund.status == Refund.Status.SUBMITTED
    with pytest.raises(DomainError):
        refund_retry(refund=refund, actor=support, reason="too early")
    provider.refund = real_refund
    with clock.frozen(clock.now() + settings.REFUND_SUBMITTED_STUCK_AFTER + datetime.timedelta(minutes=1)):
        refund = refund_retry(refund=refund, actor=support, reason="worker crashed")
    assert refund.status == Refund.Status.SUCCEEDED
    assert JournalEntry.objects.filter(key=f"refund:{refund.pk}").count() == 1

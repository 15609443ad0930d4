"""Shuffled and duplicated notification sequences end where the in-order sequence ends."""

import contextlib
import copy
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monetization.models import WebhookEvent
from monetization.providers.base import get_provider
from monetization.providers.stripe.parsing import event_from_dict
from monetization.services.webhooks import webhook_event_apply, webhook_store
from subscriptions.models import Subscription

from .support import fixture, stripe_invoice_event, stripe_subscription_event

pytestmark = pytest.mark.django_db
FIELDS = (
    "state",
    "current_period_start",
    "current_period_end",
    "trial_end",
    "grace_end",
    "auto_renew",
    "plan_id",
    "last_event_at",
)
_run = itertools.count()


def _deliver(events, order) -> None:
    """Deliver events in ``order`` (indices, duplicates allowed); waiting and retrying ones are tried again at
    the end, like the sweep."""
    for i in order:
        for event_id, created in webhook_store(events=[events[i]]):
            if created:
                with contextlib.suppress(Exception):
                    webhook_event_apply(event_id=event_id)
    for _ in range(3):
        for event_id in WebhookEvent.objects.filter(status__in=["waiting", "retrying"]).values_list("id", flat=True):
            with contextlib.suppress(Exception):
                webhook_event_apply(event_id=event_id)


def _state(provider, ref):
    sub = Subscription.objects.get(provider=provider, provider_subscription_id=ref)
    payments = sorted((str(p.amount), p.kind, p.status) for p in sub.payments.all())
    return tuple(getattr(sub, f) for f in FIELDS), payments


def _stripe_sequence(sub_id: str) -> list:
    t = 1767225600
    raw = [
        stripe_subscription_event(
            event_id=f"{sub_id}-1",
            created=t,
            sub_id=sub_id,
            status="incomplete",
            event_type="customer.subscription.created",
        ),
        stripe_subscription_event(event_id=f"{sub_id}-2", created=t + 10, sub_id=sub_id),
        stripe_invoice_event(
            event_id=f"{sub_id}-3",
            created=t + 11,
            invoice_id=f"in_{sub_id}_1",
            sub_id=sub_id,
            billing_reason="subscription_create",
        ),
        stripe_subscription_event(event_id=f"{sub_id}-4", created=t + 2678400, sub_id=sub_id, status="past_due"),
        stripe_subscription_event(
            event_id=f"{sub_id}-5", created=t + 2678500, sub_id=sub_id, period_start=1769904000, period_end=1772323200
        ),
        stripe_invoice_event(event_id=f"{sub_id}-6", created=t + 2678501, invoice_id=f"in_{sub_id}_2", sub_id=sub_id),
        stripe_subscription_event(
            event_id=f"{sub_id}-7",
            created=t + 2700000,
            sub_id=sub_id,
            period_start=1769904000,
            period_end=1772323200,
            cancel_at_period_end=True,
        ),
        stripe_subscription_event(
            event_id=f"{sub_id}-8",
            created=t + 5000000,
            sub_id=sub_id,
            status="canceled",
            event_type="customer.subscription.deleted",
        ),
    ]
    return [event_from_dict(e) for e in raw]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_stripe_sequence_converges_whatever_the_order(catalog, customers, data):
    n = next(_run)
    length = data.draw(st.integers(min_value=2, max_value=8), label="prefix")
    reference = _stripe_sequence(f"sub_ref{n}")[:length]
    shuffled = _stripe_sequence(f"sub_shf{n}")[:length]
    order = list(data.draw(st.permutations(range(length)), label="order"))
    order += data.draw(st.lists(st.sampled_from(range(length)), max_size=length), label="duplicates")
    data.draw(st.randoms(use_true_random=False)).shuffle(order)
    _deliver(reference, range(length))
    _deliver(shuffled, order)
    assert _state("stripe", f"sub_ref{n}") == _state("stripe", f"sub_shf{n}")


def _app_store_sequence(pki, otid: str) -> list:
    base = fixture("app_store", "subscribed")
    day = 86_400_000
    t0 = 1767225605000
    renew2 = {"transactionId": f"{otid}2", "purchaseDate": 1769904000000, "expiresDate": 1772323200000}
    renew3 = {"transactionId": f"{otid}3", "purchaseDate": 1773000000000, "expiresDate": 1775600000000}
    grace = {"isInBillingRetryPeriod": True, "gracePeriodExpiresDate": 1772323200000 + 16 * day}
    steps = [
        ("SUBSCRIBED", "INITIAL_BUY", t0, {"transactionId": f"{otid}1"}, {}),
        ("DID_RENEW", None, 1769904005000, renew2, {}),
        ("DID_FAIL_TO_RENEW", "GRACE_PERIOD", 1772323300000, renew2, grace),
        ("GRACE_PERIOD_EXPIRED", None, 1772323200000 + 16 * day + 1, renew2, grace),
        ("DID_RENEW", "BILLING_RECOVERY", 1773000005000, renew3, {}),
        ("DID_CHANGE_RENEWAL_STATUS", "AUTO_RENEW_DISABLED", 1773100000000, renew3, {"autoRenewStatus": 0}),
        ("EXPIRED", "VOLUNTARY", 1775600001000, renew3, {"autoRenewStatus": 0}),
    ]
    adapter = get_provider("app_store")
    events = []
    for i, (ntype, subtype, at, tx, renewal) in enumerate(steps):
        notification = copy.deepcopy(base["notification"])
        notification.update(notificationType=ntype, notificationUUID=f"{otid}-{i}", signedDate=at)
        if subtype:
            notification["subtype"] = subtype
        else:
            notification.pop("subtype", None)
        transaction = {**base["transaction"], "originalTransactionId": otid, "signedDate": at, **tx}
        renewal_info = {**base["renewal"], "originalTransactionId": otid, "signedDate": at, **renewal}
        notification["data"] = {
            **notification["data"],
            "signedTransactionInfo": pki.sign(transaction),
            "signedRenewalInfo": pki.sign(renewal_info),
        }
        events.append(adapter.decode_notification(pki.sign(notification)))
    return events


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_app_store_sequence_converges_whatever_the_order(apple_pki, catalog, customers, data):
    n = next(_run)
    length = data.draw(st.integers(min_value=1, max_value=7), label="prefix")
    reference = _app_store_sequence(apple_pki, f"91{n:06d}")[:length]
    shuffled = _app_store_sequence(apple_pki, f"92{n:06d}")[:length]
    order = list(data.draw(st.permutations(range(length)), label="order"))
    order += data.draw(st.lists(st.sampled_from(range(length)), max_size=length), label="duplicates")
    data.draw(st.randoms(use_true_random=False)).shuffle(order)
    _deliver(reference, range(length))
    _deliver(shuffled, order)
    ref_fields, ref_payments = _state("app_store", f"91{n:06d}")
    shf_fields, shf_payments = _state("app_store", f"92{n:06d}")
    assert ref_fields == shf_fields and ref_payments == shf_payments

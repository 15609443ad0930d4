"""Delivery to a real HTTP receiver on 127.0.0.1: signed, in order per customer, retried, parked, replayed."""

import re
import time
from pathlib import Path

import pytest
from django.core import mail

from monetization.errors import PermissionDenied
from monetization.models import AuditEvent, EventDelivery, EventEndpoint, OutboxEvent
from monetization.outbox.delivery import outbox_deliver
from monetization.outbox.signing import signature_header
from monetization.services.audit import audit_record
from monetization.services.event_endpoints import event_deliveries_replay, event_endpoint_rotate_secret
from monetization.services.outbox import outbox_relay
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401
from tests.outbox.receiver import Receiver

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify():
    """The verification snippet exactly as the README publishes it."""
    text = README.read_text()
    code = re.search(r"<!-- signature-snippet -->\s*```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)
    return namespace["verify"]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


# An audited change per event type (the audit row is the event).
_ACTIONS = {"RENEWAL": "subscription.payment_recovered", "CANCELLATION": "subscription.cancel"}


def write(customer, n=1, type="RENEWAL"):
    """n changes audited for ``customer``, published by the relay: their events, in order."""
    audits = [
        audit_record(
            action=_ACTIONS[type],
            object_type="subscriptions.subscription",
            object_id=i,
            customer=customer,
            actor_label="test",
            after={"n": i},
        )
        for i in range(n)
    ]
    outbox_relay()
    by_audit = {e.audit_event_id: e for e in OutboxEvent.objects.filter(audit_event_id__in=[a.pk for a in audits])}
    return [by_audit[a.pk] for a in audits]


def test_deliveries_are_signed_and_the_readme_snippet_verifies_them_through_a_rotation(receiver, make_staff):
    verify = readme_verify()
    endpoint = EventEndpoint.objects.create(url=receiver.url, secret="whsec_old")
    write(CustomerFactory(), 2)
    outbox_deliver(budget_seconds=5)
    assert len(receiver.accepted) == 2
    for got in receiver.accepted:
        header = got.headers["Backoffice-Signature"]
        assert verify(got.body, header, "whsec_old")
        assert not verify(got.body, header, "whsec_other")
        assert not verify(got.body + b" ", header, "whsec_old")
        assert got.headers["Backoffice-Event-Id"] == got.event["id"]

    new_secret = event_endpoint_rotate_secret(user=make_staff(superuser=True), endpoint=endpoint)
    write(CustomerFactory(), 1)
    outbox_deliver(budget_seconds=5)
    rotated = receiver.accepted[-1]
    header = rotated.headers["Backoffice-Signature"]
    assert verify(rotated.body, header, new_secret)
    assert verify(rotated.body, header, "whsec_old")  # both live during the overlap
    # Outside the tolerance, a correct signature is refused (a replayed capture).
    stale = signature_header(rotated.body, [new_secret], timestamp=int(time.time()) - 301)
    assert not verify(rotated.body, stale, new_secret)


def test_a_failing_customer_holds_back_only_its_own_later_events(receiver):
    blocked_customer, other = CustomerFactory(), CustomerFactory()
    down = {"on": True}
    receiver.answer = lambda got: (
        503 if down["on"] and got.event["customer"]["external_id"] == blocked_customer.external_id else 200
    )
    endpoint = EventEndpoint.objects.create(url=receiver.url, secret="s")
    first = write(blocked_customer, 3)
    others = write(other, 2)

    run = outbox_deliver(budget_seconds=5)
    assert [e["sequence"] for e in receiver.events()] == [e.pk for e in others]
    assert run.failed == 1
    failed = EventDelivery.objects.get(event=first[0])
    assert failed.attempts == 1 and failed.last_status_code == 503 and failed.status == "pending"
    assert EventDelivery.objects.filter(event__in=first[1:], attempts=0, status="pending").count() == 2
    assert len(receiver.refused) == 1  # the later ones were never sent ahead of it

    down["on"] = False
    EventDelivery.objects.filter(pk=failed.pk).update(next_attempt_at=failed.created_at)  # its backoff has passed
    outbox_deliver(budget_seconds=5)
    assert [e["sequence"] for e in receiver.events()] == [e.pk for e in others + first]
    assert not EventDelivery.objects.filter(endpoint=endpoint).exclude(status="delivered").exists()


def test_after_the_retry_window_a_delivery_is_parked_and_a_superuser_replays_it(receiver, settings, make_staff):
    settings.OUTBOX_RETRY_FOR_SECONDS = 0
    receiver.answer = lambda got: 500
    customer = CustomerFactory()
    EventEndpoint.objects.create(url=receiver.url, secret="s")
    events = write(customer, 2)
    run = outbox_deliver(budget_seconds=5)
    # Parked: no longer retried, and no longer holding the customer's later events back.
    assert run.parked == 2
    assert set(EventDelivery.objects.values_list("status", flat=True)) == {"parked"}

    receiver.answer = lambda got: 200
    staff = make_staff(superuser=True)
    assert (
        event_deliveries_replay(
            user=staff, delivery_ids=list(EventDelivery.objects.values_list("pk", flat=True)), reason="receiver fixed"
        )
        == 2
    )
    assert AuditEvent.objects.filter(action="event_delivery.replay", actor=staff).count() == 2
    outbox_deliver(budget_seconds=5)
    assert [e["id"] for e in receiver.events()] == [str(e.event_id) for e in events]


def test_replay_is_refused_to_staff_who_are_not_superusers(make_staff):
    with pytest.raises(PermissionDenied):
        event_deliveries_replay(user=make_staff("Support"), delivery_ids=[], reason="x")


def test_an_endpoint_failing_for_days_is_disabled_and_superusers_are_told(
    receiver, settings, make_staff, django_capture_on_commit_callbacks
):
    settings.OUTBOX_ENDPOINT_DISABLE_AFTER_SECONDS = 0
    boss = make_staff(superuser=True)
    boss.email = "boss@example.com"
    boss.save()
    receiver.answer = lambda got: 500
    endpoint = EventEndpoint.objects.create(url=receiver.url, secret="s")
    write(CustomerFactory(), 1)
    outbox_deliver(budget_seconds=5)  # first failure: failing since now
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None
    EventDelivery.objects.update(next_attempt_at=endpoint.failing_since)
    with django_capture_on_commit_callbacks(execute=True):
        outbox_deliver(budget_seconds=5)
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_at is not None
    assert AuditEvent.objects.filter(action="event_endpoint.disable", object_id=str(endpoint.pk)).exists()
    assert [m.to for m in mail.outbox] == [["boss@example.com"]]
    # Its deliveries wait; nothing is lost.
    assert EventDelivery.objects.filter(status="pending").count() == OutboxEvent.objects.count() == 1

"""The state machines' refresh: protected state survives it, and threads refreshing at once don't trip on
each other (django-fsm's own refresh switched protection off for the whole process while it ran)."""

import pytest

from monetization.models import Payment
from tests.concurrency import run_at_once
from tests.monetization.factories import PaymentFactory


@pytest.mark.django_db
def test_refresh_reloads_the_state_and_keeps_it_protected():
    payment = PaymentFactory()
    Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.SUCCEEDED)

    payment.refresh_from_db()

    assert payment.status == Payment.Status.SUCCEEDED
    with pytest.raises(AttributeError, match="Direct status modification is not allowed"):
        payment.status = Payment.Status.FAILED


@pytest.mark.django_db
def test_refresh_of_other_fields_leaves_the_state_loaded():
    payment = PaymentFactory()
    payment.succeed()
    payment.save()
    Payment.objects.filter(pk=payment.pk).update(failure_code="x")

    payment.refresh_from_db(fields=["failure_code"])

    assert payment.failure_code == "x"
    assert "status" in payment.__dict__ and payment.status == Payment.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_threads_refreshing_at_once_do_not_fail():
    payments = [Payment.objects.get(pk=PaymentFactory().pk) for _ in range(6)]

    def refresh_many(payment: Payment) -> None:
        for _ in range(150):  # each refresh waits on the database: the threads interleave inside it
            payment.refresh_from_db()

    assert run_at_once(refresh_many, [(p,) for p in payments]) == []


def test_every_state_machine_takes_the_thread_safe_base():
    from django.apps import apps
    from django_fsm import FSMFieldMixin

    from monetization.models.state_machine import StateMachineModel

    machines = [m for m in apps.get_models() if any(isinstance(f, FSMFieldMixin) for f in m._meta.fields)]
    assert machines
    assert [m._meta.label for m in machines if not issubclass(m, StateMachineModel)] == []

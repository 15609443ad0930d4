"""The state machines' refresh: protected state survives it, and threads refreshing at once don't trip on
each other (django-fsm's own refresh switched protection off for the whole process while it ran)."""

import threading

import pytest
from django.db import connection

from monetization.models import Payment
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
    pks = [PaymentFactory().pk for _ in range(6)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(pks))

    def refresh_many(pk: int) -> None:
        try:
            payment = Payment.objects.get(pk=pk)
            start.wait()
            for _ in range(150):  # each refresh waits on the database: the threads interleave inside it
                payment.refresh_from_db()
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=refresh_many, args=(pk,)) for pk in pks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []

"""The outbox, scheduled every OUTBOX_DELIVER_INTERVAL seconds: the relay publishes the audit rows committed
since its last run, then delivery sends what is due (a run that finds work keeps going for up to
OUTBOX_DELIVER_BUDGET_SECONDS; runs that overlap wait for the relay's lock and skip the endpoints another one
holds)."""

from celery import shared_task

from monetization.outbox.delivery import outbox_deliver
from monetization.services.outbox import outbox_relay


@shared_task(name="monetization.tasks_outbox.outbox_deliver_task", ignore_result=True)
def outbox_deliver_task() -> int:
    outbox_relay()
    return outbox_deliver().delivered

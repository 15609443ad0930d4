"""Outbox delivery, scheduled every OUTBOX_DELIVER_INTERVAL seconds (a run that finds work keeps going
for up to OUTBOX_DELIVER_BUDGET_SECONDS; runs that overlap skip the endpoints another one holds)."""

from celery import shared_task

from monetization.outbox.delivery import outbox_deliver


@shared_task(name="monetization.tasks_outbox.outbox_deliver_task", ignore_result=True)
def outbox_deliver_task() -> int:
    return outbox_deliver().delivered

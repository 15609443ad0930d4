"""Periodic housekeeping of the support console (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from monetization.services.idempotency import idempotency_keys_purge


@shared_task(name="monetization.tasks_support.idempotency_keys_purge_task")
def idempotency_keys_purge_task() -> int:
    return idempotency_keys_purge()

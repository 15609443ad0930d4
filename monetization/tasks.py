"""Celery tasks of the money core (thin: they call services)."""

from __future__ import annotations

from celery import shared_task
from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings

from monetization.providers.base import RetryableApplyError
from monetization.services.webhooks import webhook_event_apply, webhook_events_apply_waiting, webhook_events_stale


@shared_task(
    bind=True,
    autoretry_for=(RetryableApplyError,),
    retry_backoff=2,  # 2 s, 4 s, 8 s, ... (jittered), capped below
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.WEBHOOK_APPLY_MAX_RETRIES,
    # Applying is idempotent (status checked under a row lock), so a crash mid-task may safely redeliver.
    acks_late=True,
    ignore_result=True,
)
def apply_webhook_event(self, event_id: int) -> str:
    """Apply one event: a staff replay, or the retries of an event that failed in a batch."""
    try:
        event = webhook_event_apply(event_id=event_id)
    except RetryableApplyError:
        raise
    except Exception as exc:  # permanent: recorded on the row (status failed) for staff to replay
        return f"failed: {type(exc).__name__}"
    return event.status


@shared_task(bind=True, ignore_result=True, acks_late=True)
def apply_waiting_webhook_events(self) -> int:
    """Apply every event waiting in the inbox, in batches (queued by the webhook endpoints, one task at a time).

    An event that failed and may succeed later gets a task of its own that retries it with
    backoff, as its first retry. A long backlog is applied a slice at a time, each slice a
    task, so other tasks get the worker in between.
    """
    outcomes, more = webhook_events_apply_waiting(max_batches=settings.WEBHOOK_APPLY_BATCHES_PER_TASK)
    for event_id, outcome in outcomes.items():
        # Inline (the demo: no broker, no worker) nothing can wait to retry: the event stays failed, for replay.
        if isinstance(outcome, RetryableApplyError) and not self.request.is_eager:
            countdown = get_exponential_backoff_interval(
                factor=apply_webhook_event.retry_backoff,
                retries=0,
                maximum=apply_webhook_event.retry_backoff_max,
                full_jitter=apply_webhook_event.retry_jitter,
            )
            apply_webhook_event.apply_async(args=[event_id], countdown=countdown, retries=1)
    if more:
        self.delay()
    return len(outcomes)


@shared_task(ignore_result=True)
def requeue_stale_webhook_events() -> int:
    """Queue the apply task when events still wait after a while (a task lost with a broker outage)."""
    stale = webhook_events_stale()
    if stale:
        apply_waiting_webhook_events.delay()
    return stale

"""Celery tasks of the money core (thin: they call services)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from monetization.services.appliers import RetryableApplyError


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
    """Apply one event, with up to WEBHOOK_APPLY_BATCH - 1 others still waiting, in one batch.

    Under load the queue holds one task per event: each task takes the waiting events
    along, so they are applied as soon as any task runs, and the tasks of events
    already applied find nothing to do (two cheap reads). Only this task's own event
    decides its retry: the others have tasks of their own.
    """
    from monetization.services.webhooks import webhook_event_status, webhook_events_apply_batch, webhook_events_pending

    status = webhook_event_status(event_id=event_id)
    own = [] if status in ("applied", "ignored", None) else [event_id]
    others = webhook_events_pending(limit=settings.WEBHOOK_APPLY_BATCH - len(own), exclude=[event_id])
    if not own:
        if others:
            webhook_events_apply_batch(event_ids=others)
        return status or "missing"
    outcome = webhook_events_apply_batch(event_ids=own + others)[event_id]
    if isinstance(outcome, RetryableApplyError):
        raise outcome
    if isinstance(outcome, Exception):  # permanent: recorded on the row (status failed) for staff to replay
        return f"failed: {type(outcome).__name__}"
    return outcome.status


@shared_task(ignore_result=True)
def requeue_stale_webhook_events() -> int:
    from monetization.services.webhooks import webhook_requeue_stale

    return webhook_requeue_stale()


@shared_task(ignore_result=True)
def acknowledge_play_purchases() -> int:
    from monetization.services.play_acknowledgement import play_acknowledge_pending

    return play_acknowledge_pending()

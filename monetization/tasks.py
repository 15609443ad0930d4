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
    from monetization.services.webhooks import webhook_event_apply

    try:
        event = webhook_event_apply(event_id=event_id)
    except RetryableApplyError:
        raise
    except Exception as exc:  # permanent: recorded on the row (status failed) for staff to replay
        return f"failed: {type(exc).__name__}"
    return event.status


@shared_task(ignore_result=True)
def requeue_stale_webhook_events() -> int:
    from monetization.services.webhooks import webhook_requeue_stale

    return webhook_requeue_stale()


@shared_task(ignore_result=True)
def acknowledge_play_purchases() -> int:
    from monetization.services.play_acknowledgement import play_acknowledge_pending

    return play_acknowledge_pending()

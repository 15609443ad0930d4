"""Celery tasks of the money core (thin: they call services).

The webhook tasks are acknowledged late and rejected (so redelivered) when their worker
dies: applying is idempotent (status checked under a row lock), so a redelivery is safe.
Nothing depends on a message surviving, though: every unfinished event carries its next
attempt's time and the sweep queues it again once that has passed.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

from celery import shared_task
from django.conf import settings
from django.contrib import admin

from monetization import clock
from monetization.exports import close_pack_write
from monetization.services.permissions import System
from monetization.services.revenue_recognition import revenue_recognize
from monetization.services.webhooks import (
    webhook_event_apply,
    webhook_events_apply_batch,
    webhook_events_apply_waiting,
    webhook_events_due,
)

log = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def apply_webhook_event(event_id: int) -> str:
    """Apply one event (a staff replay). A failure is recorded on the row; the sweep retries it if it may."""
    try:
        event = webhook_event_apply(event_id=event_id)
    except Exception as exc:  # recorded on the row
        return f"not applied: {type(exc).__name__}"
    return event.status


@shared_task(ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def apply_webhook_events(event_ids: list[int]) -> int:
    """Apply these events (due again, or woken because their subject appeared); those another worker
    holds are left to it."""
    return len(webhook_events_apply_batch(event_ids=event_ids, wait_for_locked=False))


@shared_task(bind=True, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def apply_waiting_webhook_events(self) -> int:
    """Apply every event received and not tried yet, in batches (queued by the webhook endpoints, one task
    at a time). A long backlog is applied a slice at a time, each slice a task, so other tasks get the
    worker in between."""
    outcomes, more = webhook_events_apply_waiting(max_batches=settings.WEBHOOK_APPLY_BATCHES_PER_TASK)
    log.info("webhook events applied", extra={"events": len(outcomes), "more": more})
    if more:
        self.delay()
    return len(outcomes)


@shared_task(ignore_result=True)
def sweep_webhook_events() -> int:
    """Queue every unfinished event whose next attempt is due (beat, every ``WEBHOOK_SWEEP_INTERVAL``):
    retries with backoff, events whose task was lost with a worker or a broker, waiting events' next look.
    At most ``WEBHOOK_SWEEP_MAX`` per run; the next run takes the rest."""
    queued = 0
    while queued < settings.WEBHOOK_SWEEP_MAX:
        event_ids = webhook_events_due(limit=min(settings.WEBHOOK_APPLY_BATCH, settings.WEBHOOK_SWEEP_MAX - queued))
        if not event_ids:
            break
        apply_webhook_events.delay(event_ids)
        queued += len(event_ids)
    return queued


@shared_task(name="monetization.tasks.revenue_recognize_task", ignore_result=True)
def revenue_recognize_task() -> dict[str, str]:
    """Daily: release deferred revenue served up to today's midnight (UTC); missed days are caught up."""
    return {currency: str(amount) for currency, amount in revenue_recognize().items()}


@shared_task(ignore_result=True)
def close_pack_write_task() -> int:
    """The month just ended, as CSV and XLSX, in ``FINANCE_CLOSE_PACK_DIR`` (beat, on the 1st)."""
    month = (clock.now().date().replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
    written = close_pack_write(
        admin_site=admin.site,
        month=month,
        directory=Path(settings.FINANCE_CLOSE_PACK_DIR),
        actor=System("schedule:close_pack"),
    )
    log.info("close pack %s: %s files", f"{month:%Y-%m}", len(written))
    return len(written)

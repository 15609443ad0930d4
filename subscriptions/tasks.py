"""Celery tasks of the subscriptions app: thin adapters over services."""

from __future__ import annotations

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


# acks_late is safe here: the sweep is idempotent (a re-run finds nothing left to move).
@shared_task(name="subscriptions.lifecycle_sweep", acks_late=True, ignore_result=True)
def lifecycle_sweep_task() -> dict:
    from subscriptions.services.sweep import lifecycle_sweep

    result = lifecycle_sweep()
    summary = {"moved": result.moved, "total": result.total, "dunning_attempts": result.dunning_attempts}
    logger.info("lifecycle sweep: %s", summary)
    return summary

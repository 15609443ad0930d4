"""Celery tasks of the subscriptions app: thin adapters over services."""

from __future__ import annotations

import logging

from celery import shared_task

from subscriptions.services.finance_snapshots import finance_snapshots_refresh_recent
from subscriptions.services.overlaps import overlaps_detect
from subscriptions.services.play_acknowledgement import play_acknowledge_pending
from subscriptions.services.price_changes import price_changes_push
from subscriptions.services.reconcile import providers_reconcile_recent
from subscriptions.services.sweep import lifecycle_sweep
from subscriptions.services.win_back import win_back_run

logger = logging.getLogger(__name__)


# acks_late is safe here: the sweep is idempotent (a re-run finds nothing left to move).
@shared_task(name="subscriptions.lifecycle_sweep", acks_late=True, ignore_result=True)
def lifecycle_sweep_task() -> dict:
    result = lifecycle_sweep()
    summary = {"moved": result.moved, "total": result.total, "dunning_attempts": result.dunning_attempts}
    logger.info("lifecycle sweep: %s", summary)
    return summary


@shared_task(name="subscriptions.acknowledge_play_purchases", ignore_result=True)
def acknowledge_play_purchases() -> int:
    """Play refunds purchases not acknowledged within 3 days: acknowledge the ones that slipped through."""
    return play_acknowledge_pending()


@shared_task(name="subscriptions.reconcile_providers", ignore_result=True)
def reconcile_providers() -> dict[str, int]:
    """Nightly: compare every provider's books with ours, repair what a resync can, record the drift left."""
    left = providers_reconcile_recent()
    logger.info("reconciliation, drifts left: %s", left)
    return left


@shared_task(name="subscriptions.overlaps_detect", ignore_result=True)
def overlaps_detect_task() -> dict[str, int]:
    """Daily: customers paying on two platforms at once for the same entitlements, into Support's queue."""
    run = overlaps_detect()
    summary = {"opened": run.opened, "still_found": run.still_found, "closed": run.closed}
    logger.info("two-platform detection: %s", summary)
    return summary


@shared_task(name="subscriptions.finance_snapshots_refresh", ignore_result=True)
def finance_snapshots_refresh_task() -> int:
    """Today's and yesterday's snapshots, and the days late events marked."""
    result = finance_snapshots_refresh_recent()
    logger.info("finance snapshots refreshed: %s (%s rows)", result.ranges, result.rows)
    return result.days


# acks_late is safe: a run is idempotent (a customer is targeted once per rule per window).
@shared_task(name="subscriptions.win_back_run", acks_late=True, ignore_result=True)
def win_back_run_task() -> dict:
    result = win_back_run()
    summary = {"targeted": result.targeted, "converted": result.converted}
    logger.info("win-back run: %s", summary)
    return summary


@shared_task(name="subscriptions.price_changes_push", acks_late=True, ignore_result=True)
def price_changes_push_task() -> dict:
    result = price_changes_push()
    summary = {"claimed": result.claimed, "pushed": result.pushed, "failed": result.failed}
    logger.info("price changes pushed: %s", summary)
    return summary

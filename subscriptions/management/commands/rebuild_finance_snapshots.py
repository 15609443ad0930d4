"""Rebuild Finance's daily snapshots over a range: ``manage.py rebuild_finance_snapshots [--start D] [--end D]``."""

import datetime
import time

from django.core.management.base import BaseCommand, CommandError

from monetization import clock
from monetization.models import Payment
from subscriptions.services.finance_snapshots import finance_snapshots_refresh

BAR = 30


class Command(BaseCommand):
    help = (
        "Recompute the metrics, revenue and retention snapshots of every day in a range "
        "(default: from the first payment to today), a month a transaction."
    )

    def add_arguments(self, parser):
        parser.add_argument("--start", help="first day (ISO date; default: the first payment's day)")
        parser.add_argument("--end", help="last day (ISO date; default: today, UTC)")

    def handle(self, *args, **options):
        try:
            end = datetime.date.fromisoformat(options["end"]) if options["end"] else clock.now().date()
            if options["start"]:
                start = datetime.date.fromisoformat(options["start"])
            else:
                first = Payment.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
                start = first.astimezone(datetime.UTC).date() if first else end
        except ValueError as exc:
            raise CommandError(f"--start and --end are ISO dates: {exc}") from exc
        if start > end:
            raise CommandError("--start is after --end.")
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            filled = BAR * done // total
            elapsed = time.monotonic() - started
            self.stdout.write(f"  [{'#' * filled}{'.' * (BAR - filled)}] {done}/{total} days  {elapsed:.1f}s")

        result = finance_snapshots_refresh(start=start, end=end, progress=progress, rebuild=True)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt {result.days} days ({start} to {end}), {result.rows} rows, "
                f"in {time.monotonic() - started:.1f}s."
            )
        )

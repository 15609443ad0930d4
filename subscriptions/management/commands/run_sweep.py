"""Run the subscription lifecycle sweep now (the same work Celery beat schedules)."""

import time
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from subscriptions.services.sweep import lifecycle_sweep


class Command(BaseCommand):
    help = "End trials, move lapsed subscriptions into grace / hold, expire them, schedule dunning retries."

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=None, help="ids per transaction")
        parser.add_argument("--at", default=None, help="sweep as of this ISO time (default: now)")

    def handle(self, *args, **options):
        at: datetime | None = None
        if options["at"]:
            at = parse_datetime(options["at"])
            if at is None or at.tzinfo is None:
                raise CommandError("--at needs an ISO datetime with a UTC offset, e.g. 2027-03-01T00:00:00+00:00")
        verbosity = options["verbosity"]

        def progress(step: str, index: int, count: int, moved: int) -> None:
            if verbosity >= 1 and (verbosity >= 2 or index == count or index % 10 == 0):
                self.stdout.write(f"  {step}: chunk {index}/{count}, {moved} moved")

        started = time.monotonic()
        result = lifecycle_sweep(now=at, chunk_size=options["chunk_size"], progress=progress)
        for step, count in result.moved.items():
            self.stdout.write(f"{step}: {count}")
        self.stdout.write(f"dunning attempts scheduled: {result.dunning_attempts}")
        seconds = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(f"Swept {result.total} subscriptions in {seconds:.1f}s."))

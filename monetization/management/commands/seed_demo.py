"""Seed the demo: catalog, customers, staff logins per role, and each app's day of work.

Idempotent: running it twice leaves the same data. Each app contributes a
``<app>/demo.py`` with ``seed(*, rng, out)``; they run in ``DEMO_STEPS`` order.
"""

import importlib
import random
import time

from django.core.management.base import BaseCommand
from django.db import transaction

DEMO_STEPS = (
    "subscriptions.demo_catalog",
    "monetization.demo",
    "subscriptions.demo",
    "verified_orgs.demo",
    "creators.demo",
    "monetization.demo_support",  # issue 4: refunds, grants, staff actions (runs last, on the others' data)
)


class Command(BaseCommand):
    help = "Seed realistic demo data (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000, help="How many demo customers")
        parser.add_argument("--seed", type=int, default=20261126, help="Random seed (same seed, same data)")

    def handle(self, *args, **options):
        for dotted in DEMO_STEPS:
            try:
                module = importlib.import_module(dotted)
            except ModuleNotFoundError as exc:
                if exc.name == dotted:
                    continue
                raise
            started = time.monotonic()
            self.stdout.write(f"seeding {dotted} ...")
            with transaction.atomic():
                module.seed(rng=random.Random(options["seed"]), out=self.stdout, options=options)
            self.stdout.write(f"  done in {time.monotonic() - started:.1f}s")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        if options.get("staff_logins"):
            from monetization.demo import format_logins

            self.stdout.write(format_logins(options["staff_logins"]))

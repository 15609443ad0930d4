"""Seed the demo: catalog, customers, staff logins per role, and each app's day of work.

Idempotent: running it twice leaves the same data. Each app names its steps
(``<app>/demo/*.py`` modules with ``seed(*, rng, out, options)``) in
``monetization.demo.demo_steps``; they run in their order.
"""

import importlib
import random
import time

from django.core.management.base import BaseCommand
from django.db import transaction

from monetization.demo import demo_steps
from monetization.demo.customers import format_logins


class Command(BaseCommand):
    help = "Seed realistic demo data (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=3000, help="How many demo customers")
        parser.add_argument("--seed", type=int, default=20261126, help="Random seed (same seed, same data)")

    def handle(self, *args, **options):
        for step in sorted(demo_steps, key=lambda s: s.order):
            module = importlib.import_module(step.module)
            started = time.monotonic()
            self.stdout.write(f"seeding {step.module} ...")
            with transaction.atomic():
                module.seed(rng=random.Random(options["seed"]), out=self.stdout, options=options)
            self.stdout.write(f"  done in {time.monotonic() - started:.1f}s")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        if options.get("staff_logins"):
            self.stdout.write(format_logins(options["staff_logins"]))

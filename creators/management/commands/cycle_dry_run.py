"""What a cycle's next run would do, writing nothing: ``manage.py cycle_dry_run CYCLE_ID``."""

import json

from django.core.management.base import BaseCommand, CommandError

from creators.services.cycles import cycle_dry_run
from monetization.errors import DomainError
from monetization.services.permissions import System


class Command(BaseCommand):
    help = "Show what computing (open cycle) or paying (approved cycle) would do, without writing anything."

    def add_arguments(self, parser):
        parser.add_argument("cycle_id", type=int)

    def handle(self, *args, **options):
        try:
            plan = cycle_dry_run(cycle_id=options["cycle_id"], actor=System("command:cycle_dry_run"))
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        self.stdout.write(json.dumps(plan, indent=2, default=str))

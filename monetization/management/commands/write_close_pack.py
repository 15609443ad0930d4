"""Write a month's close pack: ``manage.py write_close_pack [--month YYYY-MM] [--dir PATH]``."""

import datetime
import time
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.core.management.base import BaseCommand, CommandError

from monetization import clock
from monetization.exports import close_pack_write
from monetization.services.permissions import System


class Command(BaseCommand):
    help = (
        "Write the month's Finance exports (payments, refunds, disputes, journal lines, subscriptions) as CSV "
        "and XLSX into FINANCE_CLOSE_PACK_DIR/YYYY-MM/ (default: last month)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: the month before this one, UTC)")
        parser.add_argument("--dir", help="where to write (default: settings.FINANCE_CLOSE_PACK_DIR)")

    def handle(self, *args, **options):
        if options["month"]:
            try:
                month = datetime.date.fromisoformat(f"{options['month']}-01")
            except ValueError as exc:
                raise CommandError(f"--month is YYYY-MM: {exc}") from exc
        else:
            month = (clock.now().date().replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
        directory = Path(options["dir"] or settings.FINANCE_CLOSE_PACK_DIR)
        started = time.monotonic()

        def progress(name: str, rows: int) -> None:
            self.stdout.write(f"  {name}: {rows:,} rows  {time.monotonic() - started:.1f}s")

        written = close_pack_write(
            admin_site=admin.site,
            month=month,
            directory=directory,
            actor=System("command:write_close_pack"),
            progress=progress,
        )
        self.stdout.write(self.style.SUCCESS(f"Wrote {len(written)} files into {directory / f'{month:%Y-%m}'}."))

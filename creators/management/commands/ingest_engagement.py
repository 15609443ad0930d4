"""Load engagement from a CSV or JSON-lines file (streaming): ``manage.py ingest_engagement FILE``."""

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from creators.services.engagement import engagement_ingest, sniff_rows
from monetization.services.permissions import System


class Command(BaseCommand):
    help = "Ingest per-creator per-day engagement from a CSV or JSON-lines file ('-' for stdin)."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--format", choices=["auto", "csv", "jsonl"], default="auto")
        parser.add_argument("--batch-size", type=int, default=100_000)

    def handle(self, *args, **options):
        path = options["file"]
        started = time.monotonic()

        def progress(result):
            rate = (result.accepted + result.rejected_count) / max(time.monotonic() - started, 1e-6)
            self.stdout.write(
                f"  accepted {result.accepted:,}  rejected {result.rejected_count:,}  ({rate:,.0f} rows/s)"
            )

        try:
            stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise CommandError(str(exc)) from exc
        with stream:
            result = engagement_ingest(
                sniff_rows(stream, fmt=options["format"]),
                actor=System(f"command:ingest_engagement {path}"),
                batch_size=options["batch_size"],
                progress=progress,
            )
        for row in sorted(result.rejected, key=lambda r: r.line)[:50]:
            self.stdout.write(f"  line {row.line}: {row.code} {row.detail}")
        self.stdout.write(
            self.style.SUCCESS(
                f"accepted {result.accepted:,}, rejected {result.rejected_count:,} in {time.monotonic() - started:.1f}s"
            )
        )

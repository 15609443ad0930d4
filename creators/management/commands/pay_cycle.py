"""Pay a cycle's approved payouts: ``manage.py pay_cycle CYCLE_ID`` (safe to kill and re-run)."""

from django.core.management.base import BaseCommand, CommandError

from creators.services.payouts import cycle_pay
from monetization.errors import DomainError
from monetization.services.permissions import System


class Command(BaseCommand):
    help = "Pay every approved payout of a revenue-share cycle (idempotent; resumable)."

    def add_arguments(self, parser):
        parser.add_argument("cycle_id", type=int)
        parser.add_argument("--chunk-size", type=int, default=500)
        parser.add_argument("--workers", type=int, default=1, help="threads sharing the cycle (SKIP LOCKED)")

    def handle(self, *args, **options):
        def progress(*, paid, failed):
            self.stdout.write(f"  paid {paid:,}  failed {failed:,}")
            self.stdout.flush()

        def one():
            from django.db import connection

            try:
                return cycle_pay(
                    cycle_id=options["cycle_id"],
                    chunk_size=options["chunk_size"],
                    progress=progress,
                    actor=System("command:pay_cycle"),
                )
            finally:
                if options["workers"] > 1:
                    connection.close()

        try:
            if options["workers"] <= 1:
                result = one()
            else:
                from concurrent.futures import ThreadPoolExecutor

                with ThreadPoolExecutor(options["workers"]) as pool:
                    results = list(pool.map(lambda _: one(), range(options["workers"])))
                result = {k: sum(r[k] for r in results) for k in ("paid", "failed")}
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.detail}") from exc
        self.stdout.write(self.style.SUCCESS(f"done: paid {result['paid']:,}, failed {result['failed']:,}"))

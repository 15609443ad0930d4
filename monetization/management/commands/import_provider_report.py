"""Import a provider's payout report and queue what differs: ``manage.py import_provider_report KIND PATH``."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from monetization.errors import DomainError
from monetization.services.permissions import System
from monetization.services.reconciliation import provider_report_import, report_kinds


class Command(BaseCommand):
    help = (
        "Match a provider's report (Stripe itemized balance CSV, Play earnings CSV, App Store sales or financial "
        "report TSV) against our books."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", help="the report's layout: " + ", ".join(name for name, _ in report_kinds.items()))
        parser.add_argument("path", help="the report file")

    def handle(self, *args, **options):
        path = Path(options["path"])
        try:
            report, created = provider_report_import(
                actor=System("command:import_provider_report"),
                kind=options["kind"],
                name=path.name,
                content=path.read_bytes(),
            )
        except (DomainError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        verb = "imported" if created else "already imported"
        self.stdout.write(
            f"{verb}: {report.lines} lines, {report.matched} matched, {report.mismatches} mismatches "
            f"(report {report.pk}; the queue: admin > Reconciliation mismatches)"
        )

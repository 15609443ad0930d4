from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from subscriptions.services.reconcile import provider_reconcile, reconcilers


class Command(BaseCommand):
    help = (
        "Compare our books with a provider's API since a date (payments, refunds, disputes), list each drift, "
        "and repair what a resync can repair. Exits non-zero while a drift is left unrepaired."
    )

    def add_arguments(self, parser):
        parser.add_argument("--provider", required=True, choices=["stripe", "app_store", "google_play"])
        parser.add_argument("--since", required=True, help="ISO 8601 date or datetime (UTC if no offset)")
        parser.add_argument("--no-repair", action="store_true", help="only list the drifts")

    def handle(self, *args, provider, since, no_repair, **options):
        try:
            when = datetime.fromisoformat(since)
        except ValueError as exc:
            raise CommandError(f"--since must be ISO 8601: {exc}") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if provider not in reconcilers:
            raise CommandError(f"No reconciler for {provider} in this deployment.")
        repair = not no_repair

        def progress(drift):
            fixable = "repairable" if drift.repair is not None else "needs a person"
            self.stdout.write(
                f"{drift.kind} {drift.reference}: {drift.detail}"
                + (f" (ours {drift.ours or '-'}, theirs {drift.theirs or '-'})" if drift.ours or drift.theirs else "")
                + f" [{fixable}]"
            )

        result = provider_reconcile(provider=provider, since=when, repair=repair, progress=progress)
        unrepaired = len(result.drifts) - result.repaired
        self.stdout.write(
            f"{provider}: {len(result.drifts)} drift(s), {result.repaired} repaired, "
            f"{result.repair_failed} repair(s) failed, {unrepaired} left"
        )
        if unrepaired:
            raise CommandError(f"{unrepaired} drift(s) left unrepaired")
        self.stdout.write(self.style.SUCCESS("no drift left"))

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from subscriptions.services.resync import provider_resync

PROVIDERS = {"stripe": "stripe", "app-store": "app_store", "google-play": "google_play"}


class Command(BaseCommand):
    help = (
        "Pull missed provider events (Stripe event list, App Store notification history, Play subscriptionsv2) "
        "since a date and converge subscriptions through the webhook appliers."
    )

    def add_arguments(self, parser):
        parser.add_argument("provider", choices=sorted(PROVIDERS))
        parser.add_argument("--since", required=True, help="ISO 8601 date or datetime (UTC if no offset)")

    def handle(self, *args, provider, since, **options):
        try:
            when = datetime.fromisoformat(since)
        except ValueError as exc:
            raise CommandError(f"--since must be ISO 8601: {exc}") from exc
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)

        def report(p):
            self.stdout.write(
                f"{provider}: seen {p.seen}, new {p.new}, applied {p.applied}, ignored {p.ignored}, failed {p.failed}"
            )

        result = provider_resync(provider=PROVIDERS[provider], since=when, progress=report)
        report(result)
        if result.failed:
            self.stderr.write(f"{result.failed} event(s) failed; see the webhook inbox in the admin to replay them.")
        self.stdout.write(self.style.SUCCESS("done"))

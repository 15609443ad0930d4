"""Load daily reference rates: ``manage.py load_exchange_rates PATH_OR_URL [--source ecb]``."""

from django.core.management.base import BaseCommand, CommandError

from monetization.errors import DomainError
from monetization.services.fx import exchange_rates_load, rate_sources


class Command(BaseCommand):
    help = "Load exchange rates (ECB eurofxref-hist.csv or daily XML by default) into the rates table."

    def add_arguments(self, parser):
        parser.add_argument("location", help="file path or URL of the rates file")
        parser.add_argument(
            "--source",
            default="ecb",
            help="a registered source: " + ", ".join(name for name, _ in rate_sources.items()),
        )

    def handle(self, *args, **options):
        try:
            result = exchange_rates_load(source=options["source"], location=options["location"])
        except (DomainError, OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"loaded {result['rates']} rates: {result['currencies']} currencies over {result['days']} days "
                f"({result['first']} .. {result['last']})"
            )
        )

"""Issue a client-app API key: ``manage.py create_api_key ios-app --scope entitlements:read --scope catalog:read``."""

from django.core.management.base import BaseCommand, CommandError

from monetization.errors import DomainError
from monetization.models import ApiKey
from monetization.services.api_keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a client app and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="The client app, e.g. ios-app")
        parser.add_argument(
            "--scope",
            dest="scopes",
            action="append",
            required=True,
            choices=ApiKey.Scope.values,
            help="Repeat for several scopes",
        )

    def handle(self, *args, name, scopes, **options):
        try:
            full, key = api_key_create(name=name, scopes=scopes, created_by=None)
        except DomainError as exc:
            raise CommandError(exc.detail) from exc
        self.stderr.write(f"API key '{key.name}' (prefix {key.prefix}, scopes {', '.join(key.scopes)}).")
        self.stderr.write("Store it now: it cannot be shown again.")
        self.stdout.write(full)

"""Annual per-creator totals for tax reporting: ``manage.py export_creator_totals YEAR [--output FILE]``."""

import csv

from django.core.management.base import BaseCommand

from creators.selectors import annual_creator_totals_rows


class _Lines:
    """The command's stdout as a csv writer's file (the writer ends its own lines)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        self.stream.write(text, ending="")


class Command(BaseCommand):
    help = "Write the year's earnings, clawbacks and payouts per creator and currency as CSV (1099-K / DAC7 style)."

    def add_arguments(self, parser):
        parser.add_argument("year", type=int)
        parser.add_argument("--output", help="file to write (default: stdout)")

    def handle(self, *args, **options):
        rows = annual_creator_totals_rows(options["year"])
        if options["output"]:
            with open(options["output"], "w", newline="") as f:
                csv.writer(f).writerows(rows)
        else:
            csv.writer(_Lines(self.stdout)).writerows(rows)

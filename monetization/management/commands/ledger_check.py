"""Prove the books balance: per-currency trial balance, and every entry balanced.

Exits 0 when balanced, 1 when not (for cron / CI). The database refuses an
unbalanced insert and any update or delete, so a failure here means someone
went around the triggers: investigate, then post a correcting entry.
"""

from django.core.management.base import BaseCommand, CommandError

from monetization.services.ledger import ledger_report


class Command(BaseCommand):
    help = "Check that the double-entry ledger balances; exit 1 when it does not."

    def handle(self, *args, **options):
        report = ledger_report()
        self.stdout.write(f"journal entries: {report.entries}")
        self.stdout.write(f"journal lines:   {report.lines}")
        self.stdout.write("trial balance (sum of signed amounts per currency, must be 0):")
        if not report.trial_balance:
            self.stdout.write("  (no lines)")
        for currency, total in sorted(report.trial_balance.items()):
            marker = "ok" if total == 0 else "UNBALANCED"
            self.stdout.write(f"  {currency}: {total:>20} {marker}")
        if report.unbalanced_entries:
            self.stdout.write(f"unbalanced entries ({len(report.unbalanced_entries)}, first 100 shown):")
            for entry_id, currency, total in report.unbalanced_entries:
                self.stdout.write(f"  entry {entry_id}: {currency} off by {total}")
        if not report.balanced:
            self.stderr.write(self.style.ERROR("The ledger does NOT balance."))
            raise CommandError("ledger unbalanced", returncode=1)
        self.stdout.write(self.style.SUCCESS("The ledger balances."))

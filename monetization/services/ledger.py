"""Posting to the double-entry ledger.

Chart of accounts (signed amounts: debit > 0, credit < 0):

- ``cash:<provider>``                  asset: money held at / owed by a provider
- ``expense:provider_fees``            what providers keep for processing (Stripe's fee)
- ``expense:store_commission``         what the stores keep of each sale (App Store, Google Play)
- ``liability:tax_payable``            tax collected on behalf of authorities
- ``revenue:<stream>``                 subscriptions, organizations, creator_subscriptions
- ``contra_revenue:refunds``           refunds given back
- ``expense:creator_revenue_share``    creators' share of revenue (earnings)
- ``liability:creator_payable``        earned by creators, not yet paid out
- ``liability:deferred_revenue``       paid for months not yet served (multi-month plans), released
                                       into ``revenue:<stream>`` day by day (services/revenue_recognition)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.db.models.functions import Round
from djmoney.money import Money

from monetization import clock
from monetization.bulk import bulk_insert_rows
from monetization.errors import DomainError, ErrorCode
from monetization.models import Customer, JournalEntry, JournalLine
from monetization.money import minor_unit_exponent as minor_unit_exponent  # the ledger's callers round with these
from monetization.money import quantize as quantize


class Account:
    PROVIDER_FEES = "expense:provider_fees"
    STORE_COMMISSION = "expense:store_commission"
    TAX_PAYABLE = "liability:tax_payable"
    REFUNDS = "contra_revenue:refunds"
    CREATOR_REVENUE_SHARE = "expense:creator_revenue_share"
    CREATOR_PAYABLE = "liability:creator_payable"
    DEFERRED_REVENUE = "liability:deferred_revenue"

    @staticmethod
    def cash(provider: str) -> str:
        return f"cash:{provider}"

    @staticmethod
    def revenue(stream: str = "subscriptions") -> str:
        return f"revenue:{stream}"


class LedgerUnbalanced(DomainError):
    """The legs of a journal entry do not balance per currency."""

    code = ErrorCode.LEDGER_UNBALANCED


@dataclass(frozen=True)
class Leg:
    account: str
    amount: Money  # signed: debit > 0, credit < 0


@dataclass
class Posting:
    key: str
    kind: str
    legs: Sequence[Leg]
    memo: str = ""
    customer: Customer | None = None
    source_type: str = ""
    source_id: str = ""
    posted_at: object = field(default=None)


def _validate(posting: Posting) -> None:
    if not posting.legs:
        raise LedgerUnbalanced("A journal entry needs at least two legs.")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in posting.legs:
        currency = str(leg.amount.currency)
        value = leg.amount.amount
        if quantize(value, currency) != value:
            raise LedgerUnbalanced(f"{leg.account}: {value} {currency} is finer than the currency's minor unit.")
        totals[currency] += value
    unbalanced = {c: t for c, t in totals.items() if t != 0}
    if unbalanced:
        raise LedgerUnbalanced(f"Entry {posting.key} does not balance: {unbalanced}")


def _lines(entry: JournalEntry, legs: Iterable[Leg]) -> list[JournalLine]:
    return [
        JournalLine(entry=entry, account=leg.account, amount=leg.amount.amount, currency=str(leg.amount.currency))
        for leg in legs
        if leg.amount.amount != 0
    ]


def journal_post(posting: Posting) -> tuple[JournalEntry, bool]:
    """Post one balanced entry exactly once. Returns (entry, created).

    A second call with the same key returns the first entry unchanged: that is
    what makes retried webhooks, tasks and payout runs safe.
    """
    _validate(posting)
    entry = JournalEntry(
        key=posting.key,
        kind=posting.kind,
        memo=posting.memo[:255],
        customer=posting.customer,
        source_type=posting.source_type,
        source_id=str(posting.source_id),
        posted_at=posting.posted_at or clock.now(),
    )
    # One statement for the exactly-once check and the insert (no read first, no savepoint): a concurrent
    # poster of the same key makes it wait for that transaction, then insert nothing.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            _ENTRY_INSERT_SQL,
            [entry.key, entry.kind, entry.memo, entry.posted_at, entry.customer_id, entry.source_type, entry.source_id],
        )
        row = cursor.fetchone()
        if row is None:
            return JournalEntry.objects.get(key=posting.key), False
        entry.pk = row[0]
        entry._state.adding = False
        JournalLine.objects.bulk_create(_lines(entry, posting.legs))
    return entry, True


_ENTRY_INSERT_SQL = f"""
INSERT INTO {JournalEntry._meta.db_table} (key, kind, memo, posted_at, customer_id, source_type, source_id)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (key) DO NOTHING
RETURNING id
"""  # noqa: S608 (the table's name, no input)


def journal_post_many(postings: Sequence[Posting], *, batch_size: int = 5000) -> int:
    """Post many entries in a few statements (payout runs, cycle computations).

    Keys already posted are skipped, so a re-run after a crash posts only what
    is missing. Call inside ``transaction.atomic()``. Returns the number posted.
    """
    for posting in postings:
        _validate(posting)
    keys = [p.key for p in postings]
    already = set()
    for i in range(0, len(keys), batch_size):
        already.update(  # unordered: the model's default order sorted every look-up for nothing
            JournalEntry.objects.filter(key__in=keys[i : i + batch_size]).order_by().values_list("key", flat=True)
        )
    todo = [p for p in postings if p.key not in already]
    now = clock.now()
    entries = [
        JournalEntry(
            key=p.key,
            kind=p.kind,
            memo=p.memo[:255],
            customer=p.customer,
            source_type=p.source_type,
            source_id=str(p.source_id),
            posted_at=p.posted_at or now,
        )
        for p in todo
    ]
    for i in range(0, len(entries), batch_size):
        bulk_insert_rows(entries[i : i + batch_size])
    # One INSERT per batch, and a batch never splits an entry's lines: the balance
    # trigger checks each statement's lines as a set (split: "does not balance").
    lines: list[tuple[int, str, Decimal, str]] = []
    for entry, posting in zip(entries, todo, strict=True):
        entry_lines = [
            (entry.pk, leg.account, leg.amount.amount, str(leg.amount.currency))
            for leg in posting.legs
            if leg.amount.amount != 0
        ]
        if lines and len(lines) + len(entry_lines) > batch_size:
            _lines_insert(lines)
            lines = []
        lines.extend(entry_lines)
    if lines:
        _lines_insert(lines)
    return len(todo)


_LINES_INSERT_SQL = f"""
INSERT INTO {JournalLine._meta.db_table} (entry_id, account, amount, currency)
SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::numeric[], %s::varchar[])
"""  # noqa: S608 (the table's name, no input)


def _lines_insert(lines: Sequence[tuple[int, str, Decimal, str]]) -> None:
    """Journal lines (entry id, account, amount, currency) in one statement, from arrays: four lines a
    payment made as model instances and compiled by ``bulk_create`` were most of a batch's ledger CPU."""
    with connection.cursor() as cursor:
        cursor.execute(_LINES_INSERT_SQL, [list(column) for column in zip(*lines, strict=True)])


def payment_legs(
    *,
    provider: str,
    amount: Money,
    fee: Money,
    tax: Money,
    stream: str = "subscriptions",
    deferred: bool = False,
    commission: Money | None = None,
    tax_remitted_by_provider: bool = False,
) -> list[Leg]:
    """Capture of a payment: cash net of what the provider keeps, fees, commission, revenue net of tax
    (deferred revenue when it pays for months still to come), tax.

    A provider that is the merchant of record (the stores) keeps the tax and pays it to the
    authorities itself: it never reaches our cash, and we owe none of it.
    """
    commission = commission if commission is not None else Money(0, amount.currency)
    kept = fee + commission + (tax if tax_remitted_by_provider else Money(0, amount.currency))
    legs = [
        Leg(Account.cash(provider), amount - kept),
        Leg(Account.PROVIDER_FEES, fee),
        Leg(Account.STORE_COMMISSION, commission),
        Leg(Account.DEFERRED_REVENUE if deferred else Account.revenue(stream), -(amount - tax)),
    ]
    if not tax_remitted_by_provider:
        legs.append(Leg(Account.TAX_PAYABLE, -tax))
    return legs


@dataclass
class LedgerReport:
    entries: int
    lines: int
    unbalanced_entries: list[tuple[int, str, Decimal]]
    trial_balance: dict[str, Decimal]

    @property
    def balanced(self) -> bool:
        return not self.unbalanced_entries and all(v == 0 for v in self.trial_balance.values())


def ledger_report() -> LedgerReport:
    # Round to the column's 4 places: exact on PostgreSQL; SQLite (the demo) sums as floats (8.9e-16).
    unbalanced = list(
        JournalLine.objects.values("entry_id", "currency")
        .annotate(total=Round(Sum("amount"), 4))
        .exclude(total=0)
        .values_list("entry_id", "currency", "total")[:100]
    )
    trial = {
        row["currency"]: row["total"]
        for row in JournalLine.objects.values("currency").annotate(total=Round(Sum("amount"), 4)).order_by("currency")
    }
    counts = JournalLine.objects.aggregate(n=Count("id"))
    return LedgerReport(
        entries=JournalEntry.objects.count(),
        lines=counts["n"],
        unbalanced_entries=unbalanced,
        trial_balance=trial,
    )

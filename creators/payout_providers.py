"""Payout providers: one small interface, Stripe Connect behind it, and a test double.

Every transfer carries the payout's own idempotency key (``payout:<id>``): a provider
that has seen the key returns the first transfer instead of sending money again. That
is what makes a crashed or repeated paying run safe.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string
from djmoney.money import Money

from monetization.services.ledger import minor_unit_exponent


@dataclass(frozen=True)
class TransferResult:
    transfer_id: str
    amount: Money
    destination: str
    replayed: bool = False  # True when the provider answered from an earlier request with the same key


class PayoutProviderError(Exception):
    """The provider refused or failed the transfer (the payout is marked failed and can be retried)."""


class PayoutProvider(Protocol):
    name: str

    def transfer(self, *, destination: str, amount: Money, idempotency_key: str) -> TransferResult: ...


def to_minor(amount: Money) -> int:
    exp = minor_unit_exponent(str(amount.currency))
    return int((amount.amount * (10**exp)).to_integral_value())


class StripeConnectProvider:
    """Stripe Connect: a Transfer from the platform balance to the creator's connected account."""

    name = "stripe_connect"

    def __init__(self, api_key: str | None = None):
        self.api_key = api_key or getattr(settings, "STRIPE_SECRET_KEY", "")

    def transfer(self, *, destination: str, amount: Money, idempotency_key: str) -> TransferResult:
        import stripe

        try:
            obj = stripe.Transfer.create(
                amount=to_minor(amount),
                currency=str(amount.currency).lower(),
                destination=destination,
                metadata={"idempotency_key": idempotency_key},
                idempotency_key=idempotency_key,
                api_key=self.api_key,
            )
        except stripe.StripeError as exc:  # card/network/account errors: the run marks the payout failed
            raise PayoutProviderError(str(exc)) from exc
        return TransferResult(transfer_id=obj["id"], amount=amount, destination=destination)


class FakePayoutProvider:
    """Test double: records each transfer once per idempotency key in ``FakeTransfer``.

    It writes through its own autocommit database connection, so what it "sent" survives
    the paying process being killed (like a real provider's records), and a repeated key
    returns the first result. ``fail_destinations`` makes transfers to those accounts fail.
    """

    name = "fake"
    fail_destinations: set[str] = set()

    def __init__(self):
        self._conn = None

    def _connection(self):
        if self._conn is None or self._conn.closed:
            import psycopg
            from django.db import connection

            if connection.vendor != "postgresql":
                return None
            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            self._conn = psycopg.connect(**params, autocommit=True)
            # Losing the last few ms on a *server* crash is fine for a test double; a killed client is not.
            self._conn.execute("SET synchronous_commit = off")
        return self._conn

    def transfer(self, *, destination: str, amount: Money, idempotency_key: str) -> TransferResult:
        delay = float(os.environ.get("FAKE_PAYOUT_DELAY", "0") or 0)
        if delay:  # lets the kill test stop a run between transfers
            time.sleep(delay)
        if destination in self.fail_destinations:
            raise PayoutProviderError(f"destination {destination} rejected the transfer")
        minor = to_minor(amount)
        currency = str(amount.currency)
        transfer_id = f"tr_fake_{uuid.uuid4().hex[:20]}"
        conn = self._connection()
        if conn is None:  # SQLite demo: the ORM in the caller's transaction is the best we have
            from creators.models import FakeTransfer

            obj, created = FakeTransfer.objects.get_or_create(
                idempotency_key=idempotency_key,
                defaults={
                    "transfer_id": transfer_id,
                    "destination": destination,
                    "amount_minor": minor,
                    "currency": currency,
                },
            )
            row = (obj.transfer_id, obj.destination, obj.amount_minor, obj.currency, not created)
        else:
            row = conn.execute(
                "INSERT INTO creators_faketransfer (idempotency_key, transfer_id, destination, amount_minor,"
                " currency, created_at) VALUES (%s, %s, %s, %s, %s, now())"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING transfer_id, destination, amount_minor, currency",
                (idempotency_key, transfer_id, destination, minor, currency),
            ).fetchone()
            if row is not None:
                row = (*row, False)
            else:
                row = conn.execute(
                    "SELECT transfer_id, destination, amount_minor, currency FROM creators_faketransfer"
                    " WHERE idempotency_key = %s",
                    (idempotency_key,),
                ).fetchone()
                row = (*row, True)
        tid, dest, amount_minor, cur, replayed = row
        exp = minor_unit_exponent(cur)
        from decimal import Decimal

        return TransferResult(
            transfer_id=tid,
            amount=Money(Decimal(amount_minor).scaleb(-exp), cur),
            destination=dest,
            replayed=replayed,
        )

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def get_payout_provider() -> PayoutProvider:
    return import_string(settings.CREATOR_PAYOUT_PROVIDER)()


class FileFakePayoutProvider:
    """The same test double, remembering transfers in an append-only file instead of a table.

    Each transfer is one ``os.write`` of a JSON line to a file opened with O_APPEND, under an
    exclusive ``flock`` taken around "have I seen this key? else append": the line is in the
    kernel once ``write`` returns, so it survives a SIGKILL of the process, and the lock plus
    re-reading what other processes appended since the last look keeps keys exactly-once across
    processes. Path: ``FAKE_PAYOUT_FILE`` (env) or the ``path`` argument.
    """

    name = "fake_file"

    def __init__(self, path: str | None = None):
        import threading

        self.path = path or os.environ.get("FAKE_PAYOUT_FILE") or "/tmp/fake_payouts.jsonl"  # noqa: S108
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._seen: dict[str, dict] = {}
        self._offset = 0
        self._lock = threading.Lock()

    def _catch_up(self) -> None:
        import json

        size = os.fstat(self._fd).st_size
        if size <= self._offset:
            return
        data = os.pread(self._fd, size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1  # a torn last line (killed mid-write) is ignored until complete
        for line in data[:end].splitlines():
            try:
                record = json.loads(line)
            except ValueError:  # never written whole: that transfer never happened
                continue
            self._seen.setdefault(record["key"], record)
        self._offset += end

    def transfer(self, *, destination: str, amount: Money, idempotency_key: str) -> TransferResult:
        import fcntl
        import json
        from decimal import Decimal

        delay = float(os.environ.get("FAKE_PAYOUT_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        if destination in FakePayoutProvider.fail_destinations:
            raise PayoutProviderError(f"destination {destination} rejected the transfer")
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                record = self._seen.get(idempotency_key)
                if record is None:
                    self._catch_up()
                    record = self._seen.get(idempotency_key)
                replayed = record is not None
                if record is None:
                    record = {
                        "key": idempotency_key,
                        "transfer_id": f"tr_fake_{uuid.uuid4().hex[:20]}",
                        "destination": destination,
                        "amount_minor": to_minor(amount),
                        "currency": str(amount.currency),
                    }
                    line = (json.dumps(record) + "\n").encode()
                    os.write(self._fd, line)
                    self._seen[idempotency_key] = record
                    if os.fstat(self._fd).st_size == self._offset + len(line):
                        self._offset += len(line)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        exp = minor_unit_exponent(record["currency"])
        return TransferResult(
            transfer_id=record["transfer_id"],
            amount=Money(Decimal(record["amount_minor"]).scaleb(-exp), record["currency"]),
            destination=record["destination"],
            replayed=replayed,
        )

    def records(self) -> dict[str, dict]:
        with self._lock:
            self._catch_up()
            return dict(self._seen)

    def close(self) -> None:
        os.close(self._fd)

"""A payout provider double that remembers its transfers in a file: what survives a killed paying run.

Used where the process that pays is killed on purpose (the kill test runs ``pay_cycle``
in a subprocess and SIGKILLs it) and by the creators benchmark: a real provider's
records outlive the client, and so must the double's. Point ``CREATOR_PAYOUT_PROVIDER``
at ``tests.creators.payout_doubles.FileFakePayoutProvider`` and ``FAKE_PAYOUT_FILE`` at
the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from decimal import Decimal

from djmoney.money import Money

from monetization.demo.providers import FakePayoutProvider
from monetization.money import minor_from_money, minor_unit_exponent
from monetization.providers.base import PayoutError, TransferResult


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
        self.path = path or os.environ.get("FAKE_PAYOUT_FILE") or "/tmp/fake_payouts.jsonl"
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self._seen: dict[str, dict] = {}
        self._offset = 0
        self._lock = threading.Lock()

    def _catch_up(self) -> None:
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
        delay = float(os.environ.get("FAKE_PAYOUT_DELAY", "0") or 0)
        if delay:
            time.sleep(delay)
        if destination in FakePayoutProvider.fail_destinations:
            raise PayoutError(f"destination {destination} rejected the transfer")
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
                        "amount_minor": minor_from_money(amount),
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

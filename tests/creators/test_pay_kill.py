"""The paying run killed with SIGKILL at random points, re-run until done: each creator is paid
exactly once, to the cent, at the provider (the file-backed double's transfers) and in the ledger."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from creators.models import Payout
from tests.processes import database_url

from .payout_doubles import FileFakePayoutProvider
from .test_payouts import approved_cycle, assert_paid_exactly_once

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_paying_run_killed_at_random_points_pays_everyone_exactly_once(tmp_path):
    cycle = approved_cycle(60)
    total = Payout.objects.filter(cycle=cycle).count()
    rng = random.Random(int(os.environ.get("KILL_TEST_SEED", "6")))
    ledger_file = str(tmp_path / "transfers.jsonl")
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "FAKE_PAYOUT_DELAY": "0.04",
        "DEBUG": "1",
        # The double's transfers outlive the killed process, as a real provider's records would.
        "CREATOR_PAYOUT_PROVIDER": "tests.creators.payout_doubles.FileFakePayoutProvider",
        "FAKE_PAYOUT_FILE": ledger_file,
    }

    def seen() -> int:
        return len(FileFakePayoutProvider(ledger_file).records())

    kills = 0
    for attempt in range(40):
        done = Payout.objects.filter(cycle=cycle, status="paid").count()
        if done == total:
            break
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "pay_cycle", str(cycle.pk), "--chunk-size", "4"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        final = attempt >= 30  # always let it finish in the end
        if not final:
            # Kill after a random delay, or once the provider has seen a random number more transfers.
            if rng.random() < 0.5:
                deadline = time.monotonic() + rng.uniform(0.8, 3.0)
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.01)
            else:
                target = seen() + rng.randint(1, 9)
                deadline = time.monotonic() + 20
                while seen() < target and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.005)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        _, err = proc.communicate(timeout=120)
        if proc.returncode not in (0, -signal.SIGKILL):
            raise AssertionError(err.decode()[-3000:])
    assert kills >= 3, "the run was never interrupted: the test proves nothing"
    records = FileFakePayoutProvider(ledger_file).records()
    transfers = {k: (r["transfer_id"], r["destination"], r["amount_minor"]) for k, r in records.items()}
    with open(ledger_file) as f:  # the provider saw each key exactly once
        assert len([line for line in f if line.strip()]) == total
    assert_paid_exactly_once(cycle, transfers)
    cycle.refresh_from_db()
    assert cycle.state == "paid"
    assert cycle.pay_processed == total

"""``make reliability``, small and bounded: 300 events, the worker SIGKILLed twice, its broker stopped 5 s."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.celery_worker import REPO
from tests.processes import database_url

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def test_the_reliability_run_ends_with_every_event_applied_once_and_none_stuck(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    from django.db import connection

    out = tmp_path / "reliability.json"
    env = {
        **os.environ,
        # A database of its own beside the test database (it migrates and seeds it).
        "DATABASE_URL": database_url(name=f"{connection.settings_dict['NAME']}_reliability"),
        "RELIABILITY_REDIS_PORT": os.environ.get("TEST_PRIVATE_REDIS_PORT", "6421"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-m", "reliability", "--events", "300", "--kills", "2", "--outage", "5", "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["stored"], result["applied"]) == (300, 300), result
    assert (result["duplicated"], result["stuck"], result["failed"]) == (0, 0, 0), result
    assert result["worker_survived_outage"] is True, result
    assert done.returncode == 0

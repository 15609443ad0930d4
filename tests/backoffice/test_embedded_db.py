"""The embedded PostgreSQL: used when no server answers, stopped after the command, the exit code passed on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import database_url

ROOT = Path(__file__).resolve().parents[2]
NOBODY_THERE = "postgres://postgres@127.0.0.1:1/demo_here"
SHOW = (
    "import os, psycopg; print(os.environ['DATABASE_URL']); "
    "print(psycopg.connect(os.environ['DATABASE_URL']).execute("
    "\"SELECT current_database(), current_setting('server_version_num')\").fetchone())"
)


def _run(*args: str, pgdata: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["EMBEDDED_PGDATA"] = str(pgdata)
    return subprocess.run(
        [sys.executable, "-m", "backoffice.embedded_db", "run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_server_answering_means_the_embedded_one_for_the_command_only(tmp_path):
    pgdata = tmp_path / "pgdata"
    result = _run("--prefer", NOBODY_THERE, "--", sys.executable, "-c", SHOW, pgdata=pgdata)
    assert result.returncode == 0, result.stderr
    url, row = result.stdout.splitlines()
    assert url.startswith("postgres://postgres@%2F") and url.endswith("/demo_here")  # its unix socket
    assert row.startswith("('demo_here', '18")
    assert "no PostgreSQL answers at 127.0.0.1:1" in result.stderr
    assert not (pgdata / "postmaster.pid").exists(), "the server outlived the command"

    failed = _run("--prefer", NOBODY_THERE, "--", sys.executable, "-c", "raise SystemExit(3)", pgdata=pgdata)
    assert failed.returncode == 3 and not (pgdata / "postmaster.pid").exists()


@pytest.mark.django_db
def test_a_server_that_answers_is_used_as_it_is(tmp_path):
    url = database_url()
    result = _run("--prefer", url, "--", sys.executable, "-c", SHOW, pgdata=tmp_path / "unused")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == url
    assert not (tmp_path / "unused").exists()

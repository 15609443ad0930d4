"""Pointing the test's connections at private servers (deploy/local_postgres.py) for a while."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

from django.db import connections

from deploy.local_postgres import PG_BIN


@contextlib.contextmanager
def databases_at(**aliases: dict):
    """Each alias's connection settings overridden (``default={"PORT": ...}``); an alias missing is
    added, shaped like ``default``. Connections are closed on the way in and out, so the next query
    opens one where the settings now say; everything is put back afterwards."""
    saved = {}
    for alias, overrides in aliases.items():
        saved[alias] = connections.settings.get(alias)
        if alias in connections.settings:
            connections[alias].close()
        base = saved[alias] or connections.settings["default"]
        connections.settings[alias] = {**base, **overrides, "TEST": {**base["TEST"], "MIRROR": None}}
        with contextlib.suppress(AttributeError):
            del connections[alias]
    try:
        yield
    finally:
        for alias, previous in saved.items():
            connections[alias].close()
            with contextlib.suppress(AttributeError):
                del connections[alias]
            if previous is None:
                del connections.settings[alias]
            else:
                connections.settings[alias] = previous


def load_test_database(port: int, name: str) -> None:
    """The test database (schema and the rows its migrations made) copied into ``name`` on a private server."""
    source = connections["default"].settings_dict
    target = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    subprocess.run([shutil.which("createdb") or str(PG_BIN / "createdb"), *target, name], check=True)
    dump = subprocess.run(
        [
            shutil.which("pg_dump") or str(PG_BIN / "pg_dump"),
            "--no-owner",
            "--no-privileges",
            "-h",
            source["HOST"] or "127.0.0.1",
            "-p",
            str(source["PORT"] or 5432),
            "-U",
            source["USER"] or "postgres",
            source["NAME"],
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [shutil.which("psql") or str(PG_BIN / "psql"), *target, "-q", "-v", "ON_ERROR_STOP=1", "-d", name],
        input=dump.stdout,
        check=True,
        capture_output=True,
    )

"""PostgreSQL's scale-out parts as private processes on this machine: PgBouncer in transaction mode, a
primary and a streaming replica, each under a directory of its own and on a port of its own.

``make prod-local`` and the tests start them; the machine's services (the system PostgreSQL, Debian's
pgbouncer service) are never started, stopped or reconfigured. PgBouncer and PostgreSQL refuse to run
as root, so as root they run as the ``postgres`` user (``runuser``), which then owns their directories.
Debian's pgbouncer is installed with apt when it is missing and this runs as root (as the browser
journeys install chromium).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer")
SUPERUSER = "postgres"


class Unavailable(RuntimeError):
    """A binary this needs is missing and cannot be installed here."""


def _root() -> bool:
    return os.geteuid() == 0


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", SUPERUSER, "--", *cmd] if _root() else cmd


def _own(path: Path) -> None:
    if _root():
        shutil.chown(path, SUPERUSER, SUPERUSER)


def answers(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(ready, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout:g} s")


def pgbouncer_binary(*, install: bool = True) -> str:
    """Debian's pgbouncer, installed with apt when missing (root only); :class:`Unavailable` otherwise."""
    if Path(PGBOUNCER).exists():
        return PGBOUNCER
    apt = shutil.which("apt-get")
    if install and apt and _root():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([apt, "install", "-y", "-qq", "--no-install-recommends", "pgbouncer"], env=env, check=False)
        if not Path(PGBOUNCER).exists():
            subprocess.run([apt, "update", "-qq"], env=env, check=False)
            subprocess.run([apt, "install", "-y", "-qq", "--no-install-recommends", "pgbouncer"], env=env, check=False)
    if not Path(PGBOUNCER).exists():
        raise Unavailable(f"{PGBOUNCER} is missing and could not be installed (apt-get install -y pgbouncer, as root)")
    return PGBOUNCER


@dataclass
class Process:
    proc: subprocess.Popen
    port: int
    directory: Path
    unix_socket: bool = False  # PgBouncer's: also listening on ``directory/.s.PGSQL.<port>``

    def url(self, database: str, user: str = SUPERUSER) -> str:
        """A libpq URL to ``database`` here: by the Unix socket when there is one (``host`` its
        directory, percent-encoded), else TCP on 127.0.0.1."""
        host = quote(str(self.directory), safe="") if self.unix_socket else "127.0.0.1"
        return f"postgres://{user}@{host}:{self.port}/{database}"

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_pgbouncer(
    directory: Path,
    port: int,
    *,
    upstream_host: str,
    upstream_port: int,
    pool_size: int = 20,
    unix_socket: bool = False,
) -> Process:
    """PgBouncer in transaction mode on ``port`` in front of every database at ``upstream``; with
    ``unix_socket`` also on a Unix socket in ``directory`` (``.s.PGSQL.<port>``, what libpq finds with
    ``host=<directory>``), as beside a web process: no TCP stack between the two."""
    binary = pgbouncer_binary()
    directory.mkdir(parents=True, exist_ok=True)
    _own(directory)
    (directory / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n')
    # Trust, as the server behind it (pg_hba: host all all 127.0.0.1/32 trust); the user must still be listed.
    # extra_float_digits is a startup parameter drivers send that PgBouncer does not track.
    (directory / "pgbouncer.ini").write_text(
        "\n".join(
            [
                "[databases]",
                f"* = host={upstream_host} port={upstream_port}",
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                f"listen_port = {port}",
                f"unix_socket_dir = {directory if unix_socket else ''}",
                "auth_type = trust",
                f"auth_file = {directory / 'userlist.txt'}",
                "pool_mode = transaction",
                f"default_pool_size = {pool_size}",
                "max_client_conn = 1000",
                f"admin_users = {SUPERUSER}",
                f"stats_users = {SUPERUSER}",
                "ignore_startup_parameters = extra_float_digits",
                f"logfile = {directory / 'pgbouncer.log'}",
                f"pidfile = {directory / 'pgbouncer.pid'}",
                "",
            ]
        )
    )
    for name in ("userlist.txt", "pgbouncer.ini"):
        _own(directory / name)
    proc = subprocess.Popen(
        _as_postgres([binary, str(directory / "pgbouncer.ini")]),
        stdout=(directory / "stdout.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait(lambda: answers(port) or proc.poll() is not None, "pgbouncer")
    if proc.poll() is not None:
        raise RuntimeError(f"pgbouncer exited: see {directory / 'pgbouncer.log'}")
    return Process(proc, port, directory, unix_socket=unix_socket)


def pgbouncer_stats(port: int) -> dict[str, int]:
    """The ``total_*`` counters of the PgBouncer on ``port`` (statements, transactions, ... passed to the
    server so far), summed over its databases. Its admin console speaks only simple queries, hence psql."""
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER, "--csv", "-c", "SHOW STATS", "pgbouncer"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    totals: dict[str, int] = {}
    for row in csv.DictReader(io.StringIO(out)):
        for column, value in row.items():
            if column.startswith("total_"):
                totals[column] = totals.get(column, 0) + int(value)
    return totals


def _pg_ctl_start(data: Path, port: int) -> Process:
    log = data.parent / f"{data.name}.log"
    log.touch()
    _own(log)
    proc = subprocess.Popen(
        _as_postgres(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={data}",
            ]
        ),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait(lambda: _accepts(port) or proc.poll() is not None, f"postgres on {port}", timeout=120)
    if proc.poll() is not None:
        raise RuntimeError(f"postgres on {port} exited: see {log}")
    return Process(proc, port, data)


def _accepts(port: int) -> bool:
    return (
        subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)], check=False).returncode
        == 0
    )


def start_primary(directory: Path, port: int) -> Process:
    """A private PostgreSQL (initdb on first use) that accepts streaming replication from this machine."""
    if not (PG_BIN / "initdb").exists():
        raise Unavailable(f"{PG_BIN / 'initdb'} is missing (Debian's postgresql-15)")
    directory.mkdir(parents=True, exist_ok=True)
    _own(directory)
    data = directory / "primary"
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\nwal_level = replica\nmax_wal_senders = 5\nhot_standby = on\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\ntimezone = 'UTC'\nmax_connections = 200\n"
            )
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
    return _pg_ctl_start(data, port)


def start_replica(directory: Path, port: int, *, primary_port: int, primary_host: str = "127.0.0.1") -> Process:
    """A hot standby streaming from the primary (pg_basebackup -R on first use)."""
    directory.mkdir(parents=True, exist_ok=True)
    _own(directory)
    data = directory / "replica"
    if not (data / "PG_VERSION").exists():
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_basebackup"),
                    "-h",
                    primary_host,
                    "-p",
                    str(primary_port),
                    "-U",
                    SUPERUSER,
                    "-D",
                    str(data),
                    "-R",
                    "-X",
                    "stream",
                    "--no-sync",
                ]
            ),
            check=True,
        )
    return _pg_ctl_start(data, port)


@contextlib.contextmanager
def streaming_pair(directory: Path, primary_port: int, replica_port: int) -> Iterator[tuple[Process, Process]]:
    primary = start_primary(directory, primary_port)
    try:
        replica = start_replica(directory, replica_port, primary_port=primary_port)
        try:
            yield primary, replica
        finally:
            replica.stop()
    finally:
        primary.stop()


def replication_lag(primary_dsn: str) -> list[dict]:
    """Each standby's lag as the primary sees it: bytes of WAL not yet replayed, and the replay delay."""
    import psycopg

    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name, state,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
            " COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float"
            " FROM pg_stat_replication ORDER BY application_name"
        ).fetchall()
    return [{"standby": r[0], "state": r[1], "lag_bytes": r[2], "lag_seconds": round(r[3], 3)} for r in rows]


def wait_replayed(primary_dsn: str, replica_dsn: str, timeout: float = 60) -> None:
    """Until the replica has replayed everything the primary had written when this was called."""
    import psycopg

    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        # The insert position, not the written one: with synchronous_commit off a commit may still sit in
        # the WAL buffers, past pg_current_wal_lsn().
        target = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(replica_dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]).fetchone()[0]:
                return
            time.sleep(0.05)
    raise RuntimeError(f"the replica did not replay {target} in {timeout:g} s")

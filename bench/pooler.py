"""``--via-pgbouncer``: a private PgBouncer in transaction mode in front of the benchmark's database
(deploy/local_postgres.py, Debian's pgbouncer, installed with apt when missing), so that a benchmark
can serve the same load direct and pooled, in interleaved rounds, and report one over the other.

The pooled processes are configured as production's web processes and webhooks pool are behind
PgBouncer (``make prod-local``): ``DATABASE_POOLER=pgbouncer`` (no server-side cursors, no prepared
statements kept on the server: backoffice/databases.py) and the session connection straight to
PostgreSQL (``DATABASE_SESSION_URL``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

# As make prod-local's (PROD_LOCAL_PGBOUNCER_POOL): enough server connections for every client process.
POOL_SIZE = int(os.environ.get("BENCH_PGBOUNCER_POOL", "20"))
# How the web process reaches PgBouncer: "socket", a Unix socket beside it (as make prod-local and
# production run it), or "tcp" on 127.0.0.1.
VIA = os.environ.get("BENCH_PGBOUNCER_VIA", "socket")
# How PgBouncer reaches PostgreSQL: "tcp", as the direct side does (production's PgBouncer is beside the app, the
# database on another machine), or "socket", PostgreSQL's Unix socket (PgBouncer on the database's machine, or
# everything on one, as here): one TCP stack fewer on the pooled side, so not like for like with direct.
UPSTREAM = os.environ.get("BENCH_PGBOUNCER_UPSTREAM", "tcp")
UPSTREAM_SOCKET_DIR = os.environ.get("BENCH_PGBOUNCER_UPSTREAM_SOCKET_DIR", "/var/run/postgresql")


@contextlib.contextmanager
def pgbouncer_env(database_url: str) -> Iterator[dict[str, str]]:
    """PgBouncer in front of the server of ``database_url`` while the block runs; yields the environment
    a process reaches the same database through it with."""
    from deploy.local_postgres import free_port, start_pgbouncer

    url = urlsplit(database_url)
    run = Path(tempfile.mkdtemp(prefix="bench-pgbouncer-"))
    run.chmod(0o755)  # PgBouncer runs as postgres when this runs as root: it must reach in
    port = free_port()
    bouncer = start_pgbouncer(
        run / "pgbouncer",
        port,
        upstream_host=UPSTREAM_SOCKET_DIR if UPSTREAM == "socket" else url.hostname or "127.0.0.1",
        upstream_port=url.port or 5432,
        pool_size=POOL_SIZE,
        unix_socket=VIA == "socket",
    )
    try:
        yield {
            "DATABASE_URL": bouncer.url(url.path.lstrip("/"), url.username or "postgres"),
            "DATABASE_POOLER": "pgbouncer",
            "DATABASE_SESSION_URL": database_url,
        }
    finally:
        bouncer.stop()
        shutil.rmtree(run, ignore_errors=True)


def served(env: dict[str, str]) -> dict[str, int]:
    """What the PgBouncer of ``env`` (from :func:`pgbouncer_env`) has passed to the server so far:
    statements and transactions, over every database."""
    from deploy.local_postgres import pgbouncer_stats

    stats = pgbouncer_stats(urlsplit(env["DATABASE_URL"]).port)
    return {"query": stats["total_query_count"], "xact": stats["total_xact_count"]}


def described() -> dict:
    """How this run's PgBouncer was reached and configured, for the figures' record."""
    return {"client_via": VIA, "upstream": UPSTREAM, "default_pool_size": POOL_SIZE}


def ratios(direct: list[dict], pooled: list[dict], key: str) -> dict:
    """pooled / direct of ``key`` per interleaved round, their median, and over all rounds together."""
    per_round = [p[key] / d[key] for d, p in zip(direct, pooled, strict=True) if d.get(key)]
    total_d, total_p = sum(d.get(key) or 0 for d in direct), sum(p.get(key) or 0 for p in pooled)
    return {
        "all_rounds": round(total_p / total_d, 2) if total_d else None,
        "median": round(statistics.median(per_round), 2) if per_round else None,
        "per_round": [round(r, 2) for r in per_round],
    }

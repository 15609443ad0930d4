"""A ``DATABASES`` entry from a URL, shaped for what sits between the app and PostgreSQL.

Behind PgBouncer in transaction mode (``pooler="pgbouncer"``) each transaction may run on a
different server connection, so nothing may outlive a transaction on the server: no server-side
cursors (``.iterator()`` declares one ``WITH HOLD`` and fetches from it in later statements) and no
prepared statements kept on the server. (Django already leaves psycopg's ``prepare_threshold`` at None and
binds parameters on the client, whose cursors never prepare, so a direct connection prepares nothing
either; the pooled one pins it in case ``OPTIONS`` turn server-side binding on.)

Nor Django's connection health check there: its ``SELECT 1`` at the start of each request that
reuses a connection would test only the link to PgBouncer, which a restart of PostgreSQL does not
break (PgBouncer opens new server connections itself), and through the pooler it is a round trip
of its own to the server, as dear as the request's query (the bare one-row read: two round trips
instead of one). Should PgBouncer itself restart, a process's next query fails once and Django
drops the failed connection at the end of that request.

No psycopg pool (Django's ``OPTIONS["pool"]``) on either side: every process serves one request or
task at a time (gunicorn sync workers, solo and prefork Celery), so the connection ``conn_max_age``
keeps is already that process's pool, and a pool in front of PgBouncer would pool pooled connections
(README, PgBouncer, for the figures).
"""

from __future__ import annotations

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

POOLERS = ("", "pgbouncer")


def database_settings(url: str, *, pooler: str = "", conn_max_age: int = 60) -> dict:
    if pooler not in POOLERS:
        raise ImproperlyConfigured(f"DATABASE_POOLER must be one of {POOLERS[1:]} or unset, not {pooler!r}.")
    config = dj_database_url.parse(url, conn_max_age=conn_max_age, conn_health_checks=True)
    if pooler == "pgbouncer":
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
        config.setdefault("OPTIONS", {})["prepare_threshold"] = None
        config["CONN_HEALTH_CHECKS"] = False
    return config

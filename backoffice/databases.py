"""A ``DATABASES`` entry from a URL, shaped for what sits between the app and PostgreSQL.

Behind PgBouncer in transaction mode (``pooler="pgbouncer"``) each transaction may run on a
different server connection, so nothing may outlive a transaction on the server: no server-side
cursors (``.iterator()`` declares one ``WITH HOLD`` and fetches from it in later statements) and no
prepared statements kept on the server (psycopg prepares a query it has run five times).
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
    return config

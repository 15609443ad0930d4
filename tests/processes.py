"""What another process (a Celery worker, a management command) needs to reach the tests' database."""

from __future__ import annotations

from urllib.parse import quote


def database_url(settings_dict: dict | None = None, name: str | None = None) -> str:
    """A DATABASE_URL for the server of ``settings_dict`` (default: the test connection's), database ``name``
    (default: the same one).

    The host may be a unix-socket directory (the embedded PostgreSQL): it is percent-encoded, as libpq
    and dj-database-url read it.
    """
    if settings_dict is None:
        from django.db import connection

        settings_dict = connection.settings_dict
    user = quote(settings_dict.get("USER") or "postgres", safe="")
    password = f":{quote(settings_dict['PASSWORD'], safe='')}" if settings_dict.get("PASSWORD") else ""
    host = quote(settings_dict.get("HOST") or "127.0.0.1", safe="")
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(name or settings_dict['NAME'], safe='')}"

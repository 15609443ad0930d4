"""Which database a read goes to: the primary, or the read replica for reports, charts and exports.

Writes always go to the primary (``default``). A read goes to the replica (the ``replica`` alias,
configured when ``DATABASE_REPLICA_URL`` is set) only inside :class:`reads_from_replica`, and
never inside :class:`primary_only` (a path that must see what it has just written: a replica
replays the primary's writes a little later) nor inside a transaction on the primary (what the
transaction wrote is not on the replica yet). Without a replica every read is the primary's.
``backoffice.db_router`` applies this to the ORM; raw SQL asks :func:`read_alias` for its connection.

``session_alias`` is the connection for session-level state (advisory locks held across
transactions): PostgreSQL itself, never through PgBouncer in transaction mode, which hands each
transaction whichever server connection is free.
"""

from __future__ import annotations

from contextlib import ContextDecorator
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
SESSION = "session"

_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)
_primary_only: ContextVar[bool] = ContextVar("primary_only", default=False)


class _Switch(ContextDecorator):
    var: ContextVar[bool]

    def _recreate_cm(self):
        # A fresh one per decorated call: the token is the call's own (threads, recursion).
        return type(self)()

    def __enter__(self):
        self._token = self.var.set(True)
        return self

    def __exit__(self, *exc):
        self.var.reset(self._token)
        return False


class reads_from_replica(_Switch):
    """Reads in here may be served by the replica (reports, charts, exports)."""

    var = _replica_reads


class primary_only(_Switch):
    """Reads in here are the primary's, even inside :class:`reads_from_replica` (read-after-write)."""

    var = _primary_only


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def read_alias() -> str:
    """The alias a read made here goes to (see the module docstring)."""
    if (
        _replica_reads.get()
        and not _primary_only.get()
        and replica_configured()
        and not connections[DEFAULT_DB_ALIAS].in_atomic_block
    ):
        return REPLICA
    return DEFAULT_DB_ALIAS


def session_alias() -> str:
    return SESSION if SESSION in settings.DATABASES else DEFAULT_DB_ALIAS

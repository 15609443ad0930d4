"""Reading the outbox in order, for consumers that pull (``GET /api/v1/events``)."""

from __future__ import annotations

import re

from django.db import connection

from monetization.errors import InvalidInput
from monetization.models import OutboxEvent

_CURSOR = re.compile(r"^(\d{1,20})\.(\d{1,20})$")


def cursor_parse(cursor: str | None) -> tuple[int, int]:
    if not cursor:
        return 0, 0
    match = _CURSOR.match(cursor)
    if match is None:
        raise InvalidInput("The cursor is not one this API gave out.", extra={"field": "after"})
    return int(match.group(1)), int(match.group(2))


# The oldest transaction still running in this database, as a 64-bit transaction id (the epoch taken from
# the snapshot's xmax), or xmax when none runs. A transaction writes only its own database, so others'
# long transactions (another database on the cluster) never hold this API back. The reader's own
# transaction does not hold itself back: what it wrote is visible to it and shares its fate (xmax is one past
# the last *completed* transaction, so it can lie below the reader's own id).
_HORIZON_SQL = """
    WITH s AS (
        SELECT GREATEST(pg_snapshot_xmax(pg_current_snapshot())::text::bigint,
                        COALESCE(pg_current_xact_id_if_assigned()::text::bigint + 1, 0)) AS xmax
    )
    SELECT COALESCE(
        min(s.xmax - (((s.xmax & 4294967295) - a.backend_xid::text::bigint + 4294967296) % 4294967296)),
        min(s.xmax)
    )
    FROM s LEFT JOIN pg_stat_activity a
      ON a.datname = current_database() AND a.backend_xid IS NOT NULL AND a.pid <> pg_backend_pid()
"""


def commit_horizon() -> int:
    """The 64-bit transaction id below which every transaction of this database has ended: rows they wrote
    are final. Read it in its own statement, before the rows: a later statement's snapshot sees them all."""
    with connection.cursor() as c:
        c.execute(_HORIZON_SQL)
        return int(c.fetchone()[0])


def outbox_events_after(*, cursor: str | None, limit: int) -> tuple[list[OutboxEvent], str | None]:
    """The committed events after ``cursor`` in commit-safe order, and the cursor to continue from
    (the same one when there is nothing new).

    Only events written by transactions older than every transaction still running here: those are
    final, so a page never moves past an event that commits later. The horizon is read first and the
    events by a later statement (a later snapshot), which sees every transaction below the horizon.
    """
    txid, last_id = cursor_parse(cursor)
    horizon = commit_horizon()
    with connection.cursor() as c:
        c.execute(
            """
            SELECT o.id, o.txid::text FROM monetization_outboxevent o
            WHERE (o.txid, o.id) > (%s::text::xid8, %s) AND o.txid < %s::text::xid8
            ORDER BY o.txid, o.id
            LIMIT %s
            """,
            [str(txid), last_id, str(horizon), limit],
        )
        rows = c.fetchall()
    if not rows:
        return [], cursor or None
    by_id = OutboxEvent.objects.in_bulk([r[0] for r in rows])
    events = [by_id[r[0]] for r in rows]
    return events, f"{rows[-1][1]}.{rows[-1][0]}"

"""Engagement ingestion: validated row by row, upserted set-based per (creator, day, source).

The bulk path on PostgreSQL: valid rows are COPY'd into a temporary (unlogged, session-local)
staging table, rows naming unknown creators are reported, and one
``INSERT ... SELECT ... ON CONFLICT (creator_id, day, source) DO UPDATE`` replaces what was
there. Re-sending a day therefore replaces it, never doubles it, and a rejected row changes
nothing. Inside one batch the last row for a key wins. SQLite (demo) uses the ORM upsert.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.db import connection, transaction

from monetization import clock
from monetization.errors import PermissionDenied
from monetization.services.audit import audit_record

from ..models import DailyEngagement

METRICS = ("impressions", "replies", "likes", "reposts")
SOURCE_RE = re.compile(r"^[a-z0-9_.:-]{1,32}$")
MAX_METRIC = 10**15
MAX_REJECTED_REPORTED = 1000
TABLE = DailyEngagement._meta.db_table
STAGE = "creators_engagement_stage"


class RowCode:
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    INVALID_DAY = "invalid_day"
    DAY_IN_FUTURE = "day_in_future"
    INVALID_SOURCE = "invalid_source"
    INVALID_NUMBER = "invalid_number"
    UNKNOWN_CREATOR = "unknown_creator"


@dataclass(frozen=True)
class RejectedRow:
    line: int
    code: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {"line": self.line, "code": self.code, "detail": self.detail}


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    rejected_count: int = 0

    def reject(self, row: RejectedRow) -> None:
        self.rejected_count += 1
        if len(self.rejected) < MAX_REJECTED_REPORTED:
            self.rejected.append(row)

    def as_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "rejected_count": self.rejected_count,
            "rejected": [r.as_dict() for r in sorted(self.rejected, key=lambda r: r.line)],
        }


# --- parsing ---------------------------------------------------------------------------


def iter_json_lines(lines: Iterable[bytes | str]) -> Iterator[tuple[int, object]]:
    """(line number, parsed object or RejectedRow) per non-blank line."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except ValueError as exc:
            yield number, RejectedRow(number, RowCode.INVALID_JSON, str(exc)[:200])


def iter_json_array(items: list) -> Iterator[tuple[int, object]]:
    yield from enumerate(items, start=1)


def iter_csv(text_lines: Iterable[str]) -> Iterator[tuple[int, object]]:
    """CSV with a header row; line numbers count the header as line 1."""
    reader = csv.DictReader(text_lines)
    yield from enumerate(reader, start=2)


def sniff_rows(stream: io.BufferedIOBase | Iterable[bytes], *, fmt: str = "auto") -> Iterator[tuple[int, object]]:
    """Rows from a byte stream in CSV, JSON lines or a JSON array (``fmt`` auto-detects)."""
    if fmt == "auto":
        head = stream.peek(64) if hasattr(stream, "peek") else b""
        first = head.lstrip()[:1]
        fmt = "json_array" if first == b"[" else "jsonl" if first == b"{" or not first else "csv"
    if fmt == "json_array":
        data = json.load(stream)
        if not isinstance(data, list):
            raise ValueError("A JSON body must be an array of rows.")
        return iter_json_array(data)
    if fmt == "csv":
        return iter_csv(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
    return iter_json_lines(stream)


# --- validation ------------------------------------------------------------------------


def validate_row(number: int, obj: object, today: datetime.date) -> tuple | RejectedRow:
    """A staged tuple (line, customer, day, source, impressions, replies, likes, reposts) or a rejection."""
    if isinstance(obj, RejectedRow):
        return obj
    if not isinstance(obj, dict):
        return RejectedRow(number, RowCode.NOT_AN_OBJECT, "each row must be an object")
    customer = obj.get("customer")
    if customer is None or customer == "":
        return RejectedRow(number, RowCode.MISSING_FIELD, "customer")
    customer = str(customer)
    if len(customer) > 64:
        return RejectedRow(number, RowCode.UNKNOWN_CREATOR, "customer id too long")
    raw_day = obj.get("day")
    if not raw_day:
        return RejectedRow(number, RowCode.MISSING_FIELD, "day")
    try:
        day = datetime.date.fromisoformat(raw_day) if isinstance(raw_day, str) else None
    except ValueError:
        day = None
    if day is None or len(raw_day) != 10:
        return RejectedRow(number, RowCode.INVALID_DAY, f"{raw_day!r} is not YYYY-MM-DD")
    if day > today:
        return RejectedRow(number, RowCode.DAY_IN_FUTURE, raw_day)
    source = obj.get("source")
    if not isinstance(source, str) or not SOURCE_RE.match(source):
        return RejectedRow(number, RowCode.INVALID_SOURCE, "source: 1-32 chars of a-z 0-9 _ . : -")
    values = []
    for name in METRICS:
        value = obj.get(name, 0)
        if isinstance(value, str):
            if value == "":
                value = 0
            elif value.isdigit():
                value = int(value)
            else:
                return RejectedRow(number, RowCode.INVALID_NUMBER, f"{name}: {value!r}")
        if type(value) is not int or value < 0 or value > MAX_METRIC:
            return RejectedRow(number, RowCode.INVALID_NUMBER, f"{name}: {value!r}")
        values.append(value)
    return (number, customer, day, source, *values)


# --- partitions ------------------------------------------------------------------------


def partition_name(year: int, month: int) -> str:
    return f"{TABLE}_y{year:04d}m{month:02d}"


def ensure_engagement_partitions(months: Iterable[tuple[int, int]]) -> None:
    """Create the monthly partitions that these (year, month)s need (idempotent).

    Looked up in the catalog every time rather than cached in-process: a partition created
    inside a transaction that rolled back is gone, and a cache would not know.
    """
    wanted = {partition_name(y, m): (y, m) for y, m in set(months)}
    if not wanted:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s)", [list(wanted)])
        existing = {r[0] for r in cursor.fetchall()}
        for name, (year, month) in sorted(wanted.items()):
            if name in existing:
                continue
            # Runs as the table's owner (creators migration 0004): the app role owns no table.
            cursor.execute("SELECT creators_engagement_partition(%s)", [datetime.date(year, month, 1)])


# --- ingestion -------------------------------------------------------------------------


def engagement_ingest(
    rows: Iterable[tuple[int, object]],
    *,
    actor=None,
    actor_kind: str | None = None,
    actor_label: str = "",
    batch_size: int = 100_000,
    progress=None,
) -> IngestResult:
    """Validate and upsert engagement rows; each batch is one transaction with its audit row.

    ``rows`` yields (line number, object) pairs (see ``sniff_rows``). Who sends them is named:
    ``actor`` (a :class:`System` cause, an operator's command) or ``actor_kind``/``actor_label``
    (a client app's key). Engagement decides creator payouts, so an unnamed sender is refused.
    ``progress(result)`` is called after each batch.
    """
    if actor is None and not actor_label:
        raise PermissionDenied("Engagement ingestion needs a named sender (an API key or a system cause).")
    who = {"actor": actor, "actor_kind": actor_kind, "actor_label": actor_label}
    result = IngestResult()
    today = clock.now().date()
    _ingest(iter(rows), today, batch_size, result, progress, who)
    return result


MERGE_SQL = f"""
    WITH resolved AS MATERIALIZED (
        SELECT s.line, a.id AS creator_id, s.day, s.source, s.impressions, s.replies, s.likes, s.reposts
        FROM {STAGE} s
        LEFT JOIN monetization_customer c ON c.external_id = s.customer
        LEFT JOIN creators_creatoraccount a ON a.customer_id = c.id
    ), merged AS (
        INSERT INTO {TABLE} AS t (creator_id, day, source, impressions, replies, likes, reposts)
        SELECT DISTINCT ON (creator_id, day, source)
               creator_id, day, source, impressions, replies, likes, reposts
        FROM resolved WHERE creator_id IS NOT NULL
        ORDER BY creator_id, day, source, line DESC
        ON CONFLICT (creator_id, day, source) DO UPDATE SET
            impressions = EXCLUDED.impressions, replies = EXCLUDED.replies,
            likes = EXCLUDED.likes, reposts = EXCLUDED.reposts
    )
    SELECT line FROM resolved WHERE creator_id IS NULL
"""  # noqa: S608 (constant table names)


def _ingest(rows: Iterator, today, batch_size: int, result: IngestResult, progress, who: dict) -> None:
    """Rows stream straight into COPY as they are validated, so the server loads while Python parses;
    then one statement resolves creators, reports unknown ones and upserts the rest."""
    exhausted = False
    while not exhausted:
        staged = 0
        months: set[tuple[int, int]] = set()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (line int, customer text, day date, source text,"
                " impressions bigint, replies bigint, likes bigint, reposts bigint) ON COMMIT DELETE ROWS"
            )
            # Inside an outer transaction (tests, callers' atomic) ON COMMIT has not fired yet.
            cursor.execute(f"TRUNCATE {STAGE}")
            with cursor.cursor.copy(
                f"COPY {STAGE} (line, customer, day, source, impressions, replies, likes, reposts) FROM STDIN"
            ) as copy:
                for number, obj in rows:
                    row = validate_row(number, obj, today)
                    if type(row) is RejectedRow:
                        result.reject(row)
                        continue
                    copy.write_row(row)
                    staged += 1
                    day = row[2]
                    months.add((day.year, day.month))
                    if staged >= batch_size:
                        break
                else:
                    exhausted = True
            unknown: list[int] = []
            if staged:
                ensure_engagement_partitions(months)
                cursor.execute(MERGE_SQL)
                unknown = [r[0] for r in cursor.fetchall()]
                audit_record(
                    action="creators.engagement_ingest",
                    object_type=TABLE,
                    after={"rows": staged - len(unknown), "unknown_creator_rows": len(unknown)},
                    **who,
                )
        for line in unknown:
            result.reject(RejectedRow(line, RowCode.UNKNOWN_CREATOR, "no creator account for this customer"))
        result.accepted += staged - len(unknown)
        if progress and staged:
            progress(result)

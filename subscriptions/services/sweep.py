"""The lifecycle sweep: time-driven state changes, set-based, for millions of rows.

What it does, in order, each step only to subscriptions that are due at ``now``:

1. a Stripe subscription whose first payment never came expires after 23 hours
   (``incomplete`` -> ``incomplete_expired``);
2. canceled subscriptions expire at their period end;
3. trials end: without auto-renew they expire; with it, a trial that nobody
   paid for lapses like a failed renewal (step 4);
4. lapsed subscriptions (period over, not renewed within the platform's
   renewal leeway) go into grace when the platform rule in force at the lapse
   has grace, else into billing retry / account hold / past_due, else expire
   (grace and hold count from the period end, not from the sweep);
5. grace ends: into hold (App Store billing retry runs 60 days from the lapse;
   Play's account hold follows grace), or expire when there is no hold;
6. hold ends: expire;
7. dunning: a web subscription on hold gets one ``DunningAttempt`` row per
   retry that has come due (Smart Retries schedule), exactly once each.

Every step is one SQL statement per id-range chunk: it locks the due rows with
``FOR UPDATE SKIP LOCKED`` (rows a webhook or another sweep holds are left for
the next run), updates them, and writes one state-history row per subscription
(``AuditEvent``, actor ``task:lifecycle_sweep``) with ``INSERT ... SELECT`` in
the same statement and transaction. The affected customers' cached
entitlements are dropped when the chunk commits. Re-running is harmless: a
moved row no longer matches its step's source state, so two sweeps at once
move each subscription exactly once.

The moves mirror the model's FSM transitions (tests check each move is a legal
transition); SQLite (the demo) gets an ORM fallback doing the same per chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Max, Min
from django.db.models.functions import Coalesce

from monetization import clock
from monetization.models import AuditEvent
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import DunningAttempt, Subscription
from subscriptions.platform_rules import PlatformRule, all_rules

SWEEP_NAME = "lifecycle_sweep"
ACTOR_LABEL = f"task:{SWEEP_NAME}"
DEFAULT_CHUNK = 20_000
HOLD_END_MOVE = "hold_end:expire"
INVALIDATE_BATCH = 1000

S = Subscription.State

# How a step finds the instant a subscription lapsed (picks the dated rule, anchors grace/hold/dunning).
LAPSE_SQL = {
    "trial_end": "s.trial_end",
    "current_period_end": "s.current_period_end",
    "billing_issue": "COALESCE(s.billing_issue_at, s.current_period_end)",
    "started_at": "s.started_at",
}
LAPSE_ORM = {
    "trial_end": F("trial_end"),
    "current_period_end": F("current_period_end"),
    "billing_issue": Coalesce("billing_issue_at", "current_period_end"),
    "started_at": F("started_at"),
}


@dataclass(frozen=True)
class Set:
    """``column = base + delta``; base is "due" (the step's due column) or "lapse" (when it lapsed)."""

    column: str
    base: str
    delta: timedelta = timedelta(0)


@dataclass(frozen=True)
class Move:
    name: str
    transition: str  # the FSM transition this move performs set-based
    source: str
    target: str
    due: str  # column whose instant (minus ``due_after``) must have passed
    sets: tuple[Set, ...] = ()
    due_after: timedelta = timedelta(0)
    providers: tuple[str, ...] = ()  # empty = every provider
    auto_renew: bool | None = None
    lapse: str = "current_period_end"
    lapse_since: datetime | None = None
    lapse_until: datetime | None = None
    reason: str = ""

    @property
    def changed_columns(self) -> list[str]:
        return [s.column for s in self.sets]


@dataclass
class SweepResult:
    moved: dict[str, int] = field(default_factory=dict)
    dunning_attempts: int = 0

    @property
    def total(self) -> int:
        return sum(self.moved.values())


def _lapse_moves(
    provider: str, rule: PlatformRule, since: datetime, until: datetime | None, *, source: str, due: str
) -> list[Move]:
    """A failed renewal (or an unpaid trial) under one dated rule version."""
    common = {
        "source": source,
        "due": due,
        "due_after": timedelta(minutes=rule.renewal_leeway_minutes),
        "providers": (provider,),
        "auto_renew": True,
        "lapse": due,
        "lapse_since": since,
        "lapse_until": until,
    }
    tag = f"{source}:{provider}:{since.date()}"
    if rule.grace_days > 0:
        return [
            Move(
                name=f"{tag}:grace",
                transition="enter_grace_period",
                target=S.IN_GRACE_PERIOD,
                sets=(Set("grace_end", "lapse", rule.grace()), Set("billing_issue_at", "lapse")),
                reason=f"renewal not paid; {rule.grace_days}-day grace period",
                **common,
            )
        ]
    hold_delta = timedelta(days=rule.billing_retry_days) if rule.billing_retry_days is not None else rule.hold()
    if hold_delta > timedelta(0):
        return [
            Move(
                name=f"{tag}:hold",
                transition="put_on_hold",
                target=S.ON_HOLD,
                sets=(Set("hold_end", "lapse", hold_delta), Set("billing_issue_at", "lapse")),
                reason="renewal not paid; billing retry / account hold",
                **common,
            )
        ]
    return [
        Move(
            name=f"{tag}:expire",
            transition="expire",
            target=S.EXPIRED,
            sets=(Set("ended_at", "lapse"),),
            reason="renewal not paid; no grace or hold",
            **common,
        )
    ]


def _grace_end_move(provider: str, rule: PlatformRule, since: datetime, until: datetime | None) -> Move:
    common = {
        "source": S.IN_GRACE_PERIOD,
        "due": "grace_end",
        "providers": (provider,),
        "lapse": "billing_issue",
        "lapse_since": since,
        "lapse_until": until,
    }
    tag = f"grace_end:{provider}:{since.date()}"
    if rule.billing_retry_days is not None:  # App Store: billing retry continues to 60 days after the lapse
        return Move(
            name=f"{tag}:hold",
            transition="put_on_hold",
            target=S.ON_HOLD,
            sets=(Set("hold_end", "lapse", timedelta(days=rule.billing_retry_days)),),
            reason="grace period expired; billing retry continues",
            **common,
        )
    if rule.hold() > timedelta(0):
        return Move(
            name=f"{tag}:hold",
            transition="put_on_hold",
            target=S.ON_HOLD,
            sets=(Set("hold_end", "due", rule.hold()),),
            reason="grace period expired; account hold",
            **common,
        )
    return Move(
        name=f"{tag}:expire",
        transition="expire",
        target=S.EXPIRED,
        sets=(Set("ended_at", "due"),),
        reason="grace period expired; no account hold",
        **common,
    )


def sweep_moves() -> list[Move]:
    """Every move of one sweep, in the order they run (later steps see earlier ones' results)."""
    rules = all_rules()
    moves: list[Move] = []
    for provider, versions in rules.items():
        for i, rule in enumerate(versions):
            if rule.incomplete_hours:
                until = versions[i + 1].since if i + 1 < len(versions) else None
                moves.append(
                    Move(
                        name=f"incomplete:{provider}:{rule.since.date()}",
                        transition="expire",
                        source=S.PENDING,
                        target=S.EXPIRED,
                        due="started_at",
                        due_after=timedelta(hours=rule.incomplete_hours),
                        providers=(provider,),
                        lapse="started_at",
                        lapse_since=rule.since,
                        lapse_until=until,
                        sets=(Set("ended_at", "due", timedelta(hours=rule.incomplete_hours)),),
                        reason=f"first payment not made within {rule.incomplete_hours} hours",
                    )
                )
    moves.append(
        Move(
            name="canceled:expire",
            transition="expire",
            source=S.CANCELED,
            target=S.EXPIRED,
            due="current_period_end",
            sets=(Set("ended_at", "due"),),
            reason="canceled; period ended",
        )
    )
    for source, due in ((S.TRIALING, "trial_end"), (S.ACTIVE, "current_period_end")):
        moves.append(
            Move(
                name=f"{source}:no_renew:expire",
                transition="expire",
                source=source,
                target=S.EXPIRED,
                due=due,
                auto_renew=False,
                sets=(Set("ended_at", "due"),),
                reason="auto-renew off; period ended",
            )
        )
        for provider, versions in rules.items():
            for i, rule in enumerate(versions):
                until = versions[i + 1].since if i + 1 < len(versions) else None
                moves.extend(_lapse_moves(provider, rule, rule.since, until, source=source, due=due))
    for provider, versions in rules.items():
        for i, rule in enumerate(versions):
            until = versions[i + 1].since if i + 1 < len(versions) else None
            moves.append(_grace_end_move(provider, rule, rule.since, until))
    moves.append(
        Move(
            name=HOLD_END_MOVE,
            transition="expire",
            source=S.ON_HOLD,
            target=S.EXPIRED,
            due="hold_end",
            sets=(Set("ended_at", "due"),),
            reason="billing retry / account hold ended unpaid",
        )
    )
    return moves


# --- finding the chunks ---------------------------------------------------------


def _due_queryset(move: Move, now: datetime):
    qs = Subscription.objects.filter(state=move.source, **{f"{move.due}__lte": now - move.due_after})
    if move.providers:
        qs = qs.filter(provider__in=move.providers)
    if move.auto_renew is not None:
        qs = qs.filter(auto_renew=move.auto_renew)
    if move.lapse_since is not None or move.lapse_until is not None:
        qs = qs.annotate(_lapse=LAPSE_ORM[move.lapse])
        if move.lapse_since is not None:
            qs = qs.filter(_lapse__gte=move.lapse_since)
        if move.lapse_until is not None:
            qs = qs.filter(_lapse__lt=move.lapse_until)
    return qs


def _id_ranges(qs, chunk_size: int) -> list[tuple[int, int]]:
    bounds = qs.order_by().aggregate(lo=Min("id"), hi=Max("id"))
    if bounds["lo"] is None:
        return []
    return [(lo, min(lo + chunk_size - 1, bounds["hi"])) for lo in range(bounds["lo"], bounds["hi"] + 1, chunk_size)]


# --- PostgreSQL: one statement per chunk -------------------------------------------

_HISTORY_COLUMNS = (
    "occurred_at, actor_id, actor_kind, actor_label, action, object_type, object_id, "
    "customer_id, before, after, reason, request_id"
)


def _pg_where(move: Move) -> tuple[str, dict]:
    clauses = [
        "s.id BETWEEN %(lo)s AND %(hi)s",
        "s.state = %(source)s",
        f"s.{move.due} <= %(due_before)s",
    ]
    params: dict = {}
    if move.providers:
        clauses.append("s.provider = ANY(%(providers)s)")
        params["providers"] = list(move.providers)
    if move.auto_renew is not None:
        clauses.append("s.auto_renew = %(auto_renew)s")
        params["auto_renew"] = move.auto_renew
    if move.lapse_since is not None:
        clauses.append(f"{LAPSE_SQL[move.lapse]} >= %(lapse_since)s")
        params["lapse_since"] = move.lapse_since
    if move.lapse_until is not None:
        clauses.append(f"{LAPSE_SQL[move.lapse]} < %(lapse_until)s")
        params["lapse_until"] = move.lapse_until
    return " AND ".join(clauses), params


def _pg_move_chunk(move: Move, lo: int, hi: int, now: datetime) -> list[str]:
    sql, params = _pg_move_sql(move, lo, hi, now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _pg_move_sql(move: Move, lo: int, hi: int, now: datetime) -> tuple[str, dict]:
    where, params = _pg_where(move)
    set_sql = []
    for i, s in enumerate(move.sets):
        base = f"s.{move.due}" if s.base == "due" else LAPSE_SQL[move.lapse]
        set_sql.append(f"{s.column} = {base} + %(delta{i})s")
        params[f"delta{i}"] = s.delta
    columns = move.changed_columns
    before = ", ".join(f"'{c}', to_jsonb(m.{c})" for c in columns)
    after = ", ".join(f"'{c}', to_jsonb(m.new_{c})" for c in columns)
    picked_cols = ", ".join(f"s.{c}" for c in columns)
    returning_new = ", ".join(f"s.{c} AS new_{c}" for c in columns)
    returning_old = ", ".join(f"p.{c}" for c in columns)
    # Only identifiers from this module are interpolated; every value is a parameter.
    sql = f"""
        WITH picked AS (
            SELECT s.id, {picked_cols} FROM subscriptions_subscription s
            WHERE {where}
            ORDER BY s.id
            FOR UPDATE SKIP LOCKED
        ), moved AS (
            UPDATE subscriptions_subscription s
            SET state = %(target)s, {", ".join(set_sql)}, updated_at = %(now)s
            FROM picked p
            -- the id range again lets the planner join on the primary key within the chunk, never the table
            WHERE s.id = p.id AND s.id BETWEEN %(lo)s AND %(hi)s AND s.state = %(source)s
            RETURNING s.id, s.customer_id, {returning_new}, {returning_old}
        ), history AS (
            INSERT INTO monetization_auditevent ({_HISTORY_COLUMNS})
            SELECT %(now)s, NULL, %(actor_kind)s, %(actor_label)s, %(action)s, 'subscriptions.subscription',
                   m.id::text, m.customer_id,
                   jsonb_build_object('state', %(source)s::text, {before}),
                   jsonb_build_object('state', %(target)s::text, {after}),
                   %(reason)s, ''
            FROM moved m
        )
        -- one primary-key lookup per moved row (a join would hash the whole customer table per chunk)
        SELECT (SELECT c.external_id FROM monetization_customer c WHERE c.id = m.customer_id) FROM moved m
    """  # noqa: S608
    params.update(
        lo=lo,
        hi=hi,
        source=move.source,
        target=move.target,
        due_before=now - move.due_after,
        now=now,
        actor_kind=AuditEvent.ActorKind.SYSTEM,
        actor_label=ACTOR_LABEL,
        action=f"subscription.{move.transition}",
        reason=move.reason,
    )
    return sql, params


# --- the ORM fallback (SQLite demo) -------------------------------------------------


def _orm_move_chunk(move: Move, lo: int, hi: int, now: datetime) -> list[str]:
    from monetization.services.audit import _json_safe

    qs = _due_queryset(move, now).filter(id__gte=lo, id__lte=hi)
    if not move.lapse_since and not move.lapse_until:
        qs = qs.annotate(_lapse=LAPSE_ORM[move.lapse])
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True, of=("self",))
    columns = dict.fromkeys(["id", "customer_id", "customer__external_id", "_lapse", move.due, *move.changed_columns])
    rows = list(qs.values(*columns))
    events, external_ids = [], []
    for row in rows:
        new = {}
        for s in move.sets:
            new[s.column] = (row[move.due] if s.base == "due" else row["_lapse"]) + s.delta
        if not Subscription.objects.filter(pk=row["id"], state=move.source).update(
            state=move.target, updated_at=now, **new
        ):
            continue
        events.append(
            AuditEvent(
                occurred_at=now,
                actor_kind=AuditEvent.ActorKind.SYSTEM,
                actor_label=ACTOR_LABEL,
                action=f"subscription.{move.transition}",
                object_type="subscriptions.subscription",
                object_id=str(row["id"]),
                customer_id=row["customer_id"],
                before=_json_safe({"state": move.source, **{c: row[c] for c in move.changed_columns}}),
                after=_json_safe({"state": move.target, **new}),
                reason=move.reason,
            )
        )
        external_ids.append(row["customer__external_id"])
    AuditEvent.objects.bulk_create(events, batch_size=1000)
    return external_ids


# --- dunning -------------------------------------------------------------------------


def _dunning_chunk(provider: str, rule: PlatformRule, until: datetime | None, lo: int, hi: int, now: datetime) -> int:
    offsets = rule.dunning_offsets
    if connection.vendor == "postgresql":
        sql = f"""
            INSERT INTO subscriptions_dunningattempt (subscription_id, attempt, due_at, status, created_at)
            SELECT s.id, o.n, {LAPSE_SQL["billing_issue"]} + o.off, %(status)s, %(now)s
            FROM subscriptions_subscription s
            -- one index probe per subscription for the retries already recorded, not one per retry
            CROSS JOIN LATERAL (
                SELECT COALESCE(max(d.attempt), 0) AS done
                FROM subscriptions_dunningattempt d WHERE d.subscription_id = s.id
            ) recorded
            CROSS JOIN unnest(%(numbers)s::int[], %(offsets)s::interval[]) AS o(n, off)
            WHERE s.id BETWEEN %(lo)s AND %(hi)s AND s.state = %(state)s AND s.provider = %(provider)s
              -- before the per-subscription probe: skip those whose first retry is not due yet
              AND {LAPSE_SQL["billing_issue"]} + %(first_offset)s <= %(now)s
              AND o.n > recorded.done
              AND {LAPSE_SQL["billing_issue"]} >= %(since)s
              AND (%(until)s::timestamptz IS NULL OR {LAPSE_SQL["billing_issue"]} < %(until)s::timestamptz)
              AND {LAPSE_SQL["billing_issue"]} + o.off <= %(now)s
            ON CONFLICT (subscription_id, attempt) DO NOTHING
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                {
                    "status": DunningAttempt.Status.SCHEDULED,
                    "now": now,
                    "numbers": list(range(1, len(offsets) + 1)),
                    "offsets": list(offsets),
                    "first_offset": min(offsets),
                    "lo": lo,
                    "hi": hi,
                    "state": S.ON_HOLD,
                    "provider": provider,
                    "since": rule.since,
                    "until": until,
                },
            )
            return cursor.rowcount
    rows = (
        Subscription.objects.filter(id__gte=lo, id__lte=hi, state=S.ON_HOLD, provider=provider)
        .annotate(_lapse=LAPSE_ORM["billing_issue"])
        .filter(_lapse__gte=rule.since, **({"_lapse__lt": until} if until else {}))
        .values_list("id", "_lapse")
    )
    attempts = [
        DunningAttempt(subscription_id=sub_id, attempt=n, due_at=lapse + off, created_at=now)
        for sub_id, lapse in rows
        for n, off in enumerate(offsets, start=1)
        if lapse + off <= now
    ]
    before = DunningAttempt.objects.count()
    DunningAttempt.objects.bulk_create(attempts, ignore_conflicts=True)
    return DunningAttempt.objects.count() - before


# --- the sweep -------------------------------------------------------------------------

Progress = Callable[[str, int, int, int], None]


def lifecycle_sweep(
    *, now: datetime | None = None, chunk_size: int | None = None, progress: Progress | None = None
) -> SweepResult:
    """Run every due lifecycle move once. Safe to run concurrently and to re-run.

    ``progress(step, chunk_index, chunk_count, moved_so_far)`` is called after each chunk.
    """
    # In UTC: arithmetic on a local time drops PEP 495's fold and lands an hour off after a DST change.
    now = (now or clock.now()).astimezone(UTC)
    chunk_size = chunk_size or getattr(settings, "SUBSCRIPTION_SWEEP_CHUNK", DEFAULT_CHUNK)
    move_chunk = _pg_move_chunk if connection.vendor == "postgresql" else _orm_move_chunk
    result = SweepResult()
    for move in sweep_moves():
        if move.name == HOLD_END_MOVE:
            # Retries due before the hold ends are recorded before it expires (also on a late sweep).
            result.dunning_attempts += _run_dunning(now, chunk_size, progress)
        ranges = _id_ranges(_due_queryset(move, now), chunk_size)
        moved = 0
        for index, (lo, hi) in enumerate(ranges, start=1):
            with transaction.atomic():
                external_ids = move_chunk(move, lo, hi, now)
                moved += len(external_ids)
                # On commit, in slices: one huge DEL would block Redis for everyone else.
                unique = sorted(set(external_ids))
                for i in range(0, len(unique), INVALIDATE_BATCH):
                    entitlements_invalidate(unique[i : i + INVALIDATE_BATCH])
            if progress:
                progress(move.name, index, len(ranges), moved)
        if moved:
            result.moved[move.name] = moved
    return result


def _run_dunning(now: datetime, chunk_size: int, progress: Progress | None) -> int:
    created = 0
    for provider, versions in all_rules().items():
        for i, rule in enumerate(versions):
            if not rule.dunning_offsets:
                continue
            until = versions[i + 1].since if i + 1 < len(versions) else None
            # Only the range of subscriptions whose first retry has come due (none: nothing to scan).
            due = (
                Subscription.objects.filter(state=S.ON_HOLD, provider=provider)
                .annotate(_lapse=LAPSE_ORM["billing_issue"])
                .filter(_lapse__lte=now - min(rule.dunning_offsets))
            )
            ranges = _id_ranges(due, chunk_size)
            for index, (lo, hi) in enumerate(ranges, start=1):
                with transaction.atomic():
                    created += _dunning_chunk(provider, rule, until, lo, hi, now)
                if progress:
                    progress(f"dunning:{provider}:{rule.since.date()}", index, len(ranges), created)
    return created

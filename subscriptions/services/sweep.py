"""The lifecycle sweep: the moves the clock makes, set-based, for millions of rows.

The moves are the model's (``Subscription.DEADLINES``): a subscription whose deadline has passed
takes the first of the deadline's transitions whose conditions hold, with the field effects that
transition declares. In order, each only to subscriptions that are due at ``now``:

1. a Stripe subscription whose first payment never came expires after 23 hours
   (``incomplete`` -> ``incomplete_expired``);
2. canceled subscriptions expire at their period end;
3. trials end: without auto-renew they expire; with it, a trial that nobody
   paid for lapses like a failed renewal (step 4);
4. lapsed subscriptions (period over, not renewed within the platform's
   renewal leeway) go into grace when the product or the platform rule in
   force at the lapse grants grace, else into billing retry / account hold /
   past_due, else expire (grace and hold count from the period end, not from
   the sweep);
5. grace ends: into hold (App Store billing retry runs 60 days from the lapse;
   Play's account hold and Stripe's past_due follow grace), or expire when there is no hold;
6. hold ends: expire;
7. dunning: a web subscription on hold gets one ``DunningAttempt`` row per
   retry that has come due (Smart Retries schedule), exactly once each; this
   runs before step 6, so retries due before the hold ends are recorded.

A deadline whose outcome depends on the terms (platform rule in force at the lapse, product
grace) becomes one move per provider, dated rule version and product kind with its own grace;
within one such partition the terms are constants, so the transition's conditions are decided
once and its field effects (``Instant``: first non-null column plus an interval) become SQL.

Every move is one SQL statement per id-range chunk: it locks the due rows with
``FOR UPDATE SKIP LOCKED`` (rows a webhook or another sweep holds are left for
the next run), updates them, and writes one state-history row per subscription
(``AuditEvent``, actor ``task:lifecycle_sweep``) with ``INSERT ... SELECT`` in the same statement and
transaction; that row is also the outbound event (the outbox relay publishes it once it is committed).
The state hooks hear of each chunk's moves in that transaction (an organization follows its
subscription), and the affected customers' cached entitlements are dropped when the chunk commits.
Re-running is harmless: a moved row no longer matches its move's source state, so two sweeps at once
move each subscription exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction

from monetization import clock
from monetization.models import AuditEvent
from monetization.providers import provider_capabilities
from subscriptions.entitlements import entitlements_invalidate
from subscriptions.models import DunningAttempt, Product, Subscription
from subscriptions.models.lifecycle import EFFECTIVE, Deadline, Instant, Step, Terms
from subscriptions.models.subscriptions import lapse_instant, products_own_grace
from subscriptions.platform_rules import PlatformRule, all_rules
from subscriptions.services.lifecycle import Cause, StateMoves, state_hooks_run

SWEEP_NAME = "lifecycle_sweep"
ACTOR_LABEL = f"task:{SWEEP_NAME}"
DEFAULT_CHUNK = 20_000

S = Subscription.State
TABLE = Subscription._meta.db_table
COLUMNS = {f.attname: f for f in Subscription._meta.concrete_fields}


@dataclass(frozen=True)
class Move:
    """One deadline's move for one partition of subscriptions, as the sweep runs it."""

    name: str
    deadline: str
    transition: str
    source: str
    target: str
    due: str  # the column the deadline counts from
    after: timedelta  # the move takes effect at due + after
    leeway: timedelta  # and is made once due + after + leeway has passed
    effects: tuple[tuple[str, Instant], ...]
    reason: str
    auto_renew: bool | None = None
    provider: str | None = None  # None: every provider
    lapse: Instant | None = None  # with lapse_since/until: the dated rule version's partition
    lapse_since: datetime | None = None
    lapse_until: datetime | None = None
    kinds: tuple[str, ...] = ()  # only products of these kinds
    other_kinds: tuple[str, ...] = ()  # no products of these kinds
    product_grace_days: int = 0

    @property
    def effective(self) -> Instant:
        return Instant((self.due,), self.after)

    @property
    def changed_columns(self) -> list[str]:
        return [column for column, _ in self.effects]


@dataclass
class SweepResult:
    moved: dict[str, int] = field(default_factory=dict)
    dunning_attempts: int = 0

    @property
    def total(self) -> int:
        return sum(self.moved.values())


# --- from the model's declaration to moves -----------------------------------------------


def _fsm_transition(source: str, name: str):
    method = getattr(Subscription, name, None)
    meta = getattr(method, "_django_fsm", None)
    found = meta.get_transition(source) if meta else None
    if found is None:
        raise ImproperlyConfigured(f"Subscription.{name} is not a transition from {source}.")
    return found


def _no_terms() -> Terms:
    raise ImproperlyConfigured("A deadline whose effects depend on the terms must be declared by_terms.")


def _first_step(deadline: Deadline, terms: Terms | None) -> Step | None:
    """The step the model takes under these terms: its transition's conditions and the step's own hold."""
    for step in deadline.steps:
        conditions = _fsm_transition(deadline.source, step.transition).conditions
        if terms is None:
            if conditions or step.when:
                raise ImproperlyConfigured(f"{deadline.name}: {step.transition} has conditions; declare it by_terms.")
            return step
        for condition in conditions:
            if not hasattr(condition, "terms_check"):
                raise ImproperlyConfigured(
                    f"{deadline.name}: the condition {condition.__name__} of {step.transition} is not decided "
                    "by the terms alone, so the sweep cannot decide it for a set of rows."
                )
        if all(c.terms_check(terms) for c in conditions) and (step.when is None or step.when(terms)):
            return step
    return None


def _move(deadline: Deadline, terms: Terms | None, *, tag: str = "", **partition) -> Move | None:
    after = deadline.after(terms)
    if after is None:
        return None
    step = _first_step(deadline, terms)
    if step is None:
        return None
    found = _fsm_transition(deadline.source, step.transition)
    effects = found.custom.get("effects")
    declared = effects(deadline.source, (lambda: terms) if terms is not None else _no_terms) if effects else {}
    for column, instant in declared.items():
        unknown = {column, *instant.columns} - {*COLUMNS, EFFECTIVE}
        if unknown:
            raise ImproperlyConfigured(f"{step.transition}: unknown columns {sorted(unknown)} in its effects.")
    return Move(
        name=f"{deadline.name}{tag}:{step.tag or step.transition}",
        deadline=deadline.name,
        transition=step.transition,
        source=deadline.source,
        target=found.target,
        due=deadline.due,
        after=after,
        leeway=deadline.leeway(terms),
        effects=tuple(declared.items()),
        reason=step.reason(terms),
        auto_renew=deadline.auto_renew,
        **partition,
    )


def _product_classes() -> list[tuple[int, tuple[str, ...], tuple[str, ...]]]:
    """(grace days, kinds, other kinds): one class per product kind with its own grace that has a
    plan, and one for every other kind (the platform's rule alone). A kind with no plan has no
    subscription to set apart (a plan created during this sweep has none whose period is over)."""
    own = products_own_grace()
    present = sorted(set(Product.objects.filter(kind__in=own, plans__isnull=False).values_list("kind", flat=True)))
    return [*((own[kind], (kind,), ()) for kind in present), (0, (), tuple(present))]


def sweep_moves() -> list[Move]:
    """Every move of one sweep, in the order they run (later moves see earlier ones' results)."""
    rules = all_rules()
    classes = _product_classes()
    moves: list[Move] = []
    for deadline in Subscription.DEADLINES:
        if not deadline.by_terms:
            move = _move(deadline, None)
            if move is not None:
                moves.append(move)
            continue
        for provider, versions in rules.items():
            for i, rule in enumerate(versions):
                until = versions[i + 1].since if i + 1 < len(versions) else None
                for grace_days, kinds, other_kinds in classes:
                    move = _move(
                        deadline,
                        Terms(rule=rule, product_grace_days=grace_days, capabilities=provider_capabilities(provider)),
                        tag=f":{provider}:{rule.since.date()}" + "".join(f":{k}" for k in kinds),
                        provider=provider,
                        lapse=lapse_instant(deadline.source),
                        lapse_since=rule.since,
                        lapse_until=until,
                        kinds=kinds,
                        other_kinds=other_kinds,
                        product_grace_days=grace_days,
                    )
                    if move is not None:
                        moves.append(move)
    return moves


# --- SQL -------------------------------------------------------------------------------


class _Params(dict):
    def add(self, value) -> str:
        key = f"p{len(self)}"
        self[key] = value
        return f"%({key})s"


def _instant_sql(instant: Instant, move: Move, params: _Params, *, effective: str) -> str:
    """``COALESCE(s.a, s.b, ...) + interval``; stops at a column that is never NULL in the rows the
    move selects (its due column, a NOT NULL column), as the Python evaluation would stop there."""
    parts: list[str] = []
    for column in instant.columns:
        if column == EFFECTIVE:
            parts.append(effective)
            break
        parts.append(f"s.{column}")
        if column == move.due or not COLUMNS[column].null:
            break
    expr = parts[0] if len(parts) == 1 else f"COALESCE({', '.join(parts)})"
    if instant.delta:
        expr = f"({expr} + {params.add(instant.delta)})"
    return expr


_KIND_PLANS = (
    "SELECT p.id FROM subscriptions_plan p JOIN subscriptions_product pr ON pr.id = p.product_id "
    "WHERE pr.kind = ANY({kinds})"
)


def _where(move: Move, now: datetime, params: _Params) -> str:
    clauses = [
        f"s.state = {params.add(move.source)}",
        f"s.{move.due} <= {params.add(now - move.after - move.leeway)}",
    ]
    if move.provider is not None:
        clauses.append(f"s.provider = {params.add(move.provider)}")
    if move.auto_renew is not None:
        clauses.append(f"s.auto_renew = {params.add(move.auto_renew)}")
    if move.lapse is not None:
        # The rule version in force at the lapse; like Subscription.terms(), at the clock when unknown.
        lapse = _instant_sql(move.lapse, move, params, effective=params.add(now))
        if move.lapse_since is not None:
            clauses.append(f"{lapse} >= {params.add(move.lapse_since)}")
        if move.lapse_until is not None:
            clauses.append(f"{lapse} < {params.add(move.lapse_until)}")
    if move.kinds:
        clauses.append(f"s.plan_id IN ({_KIND_PLANS.format(kinds=params.add(list(move.kinds)))})")
    if move.other_kinds:
        clauses.append(f"s.plan_id NOT IN ({_KIND_PLANS.format(kinds=params.add(list(move.other_kinds)))})")
    return " AND ".join(clauses)


_HISTORY_COLUMNS = (
    "occurred_at, actor_id, actor_kind, actor_label, action, object_type, object_id, "
    "customer_id, before, after, reason, request_id"
)


def _move_sql(move: Move, lo: int, hi: int, now: datetime) -> tuple[str, dict]:
    params = _Params()
    where = _where(move, now, params)
    effective = _instant_sql(move.effective, move, params, effective="")
    sets = [f"{column} = {_instant_sql(i, move, params, effective=effective)}" for column, i in move.effects]
    columns = move.changed_columns
    before = "".join(f", '{c}', to_jsonb(m.{c})" for c in columns)
    after = "".join(f", '{c}', to_jsonb(m.new_{c})" for c in columns)
    picked_cols = "".join(f", s.{c}" for c in columns)
    returning_new = "".join(f", s.{c} AS new_{c}" for c in columns)
    returning_old = "".join(f", p.{c}" for c in columns)
    lo_, hi_, source, target = params.add(lo), params.add(hi), params.add(move.source), params.add(move.target)
    now_ = params.add(now)
    # Only identifiers from the model's declaration are interpolated; every value is a parameter.
    sql = f"""
        WITH picked AS (
            SELECT s.id{picked_cols} FROM {TABLE} s
            WHERE s.id BETWEEN {lo_} AND {hi_} AND {where}
            ORDER BY s.id
            FOR UPDATE SKIP LOCKED
        ), moved AS (
            UPDATE {TABLE} s
            SET state = {target}, {"".join(f"{x}, " for x in sets)}updated_at = {now_}
            FROM picked p
            -- the id range again lets the planner join on the primary key within the chunk, never the table
            WHERE s.id = p.id AND s.id BETWEEN {lo_} AND {hi_} AND s.state = {source}
            RETURNING s.id, s.customer_id{returning_new}{returning_old}
        ), history AS (
            INSERT INTO monetization_auditevent ({_HISTORY_COLUMNS})
            SELECT {now_}, NULL, {params.add(AuditEvent.ActorKind.SYSTEM)}, {params.add(ACTOR_LABEL)},
                   {params.add(f"subscription.{move.transition}")}, 'subscriptions.subscription',
                   m.id::text, m.customer_id,
                   jsonb_build_object('state', {source}::text{before}),
                   jsonb_build_object('state', {target}::text{after}),
                   {params.add(move.reason)}, ''
            FROM moved m
        )
        -- one primary-key lookup per moved row (a join would hash the whole customer table per chunk)
        SELECT m.id, (SELECT c.external_id FROM monetization_customer c WHERE c.id = m.customer_id) FROM moved m
    """  # noqa: S608
    return sql, params


def _move_chunk(move: Move, lo: int, hi: int, now: datetime) -> list[tuple[int, str]]:
    sql, params = _move_sql(move, lo, hi, now)
    with connection.cursor() as cursor:
        # Once the table's statistics lag the rows (after earlier chunks moved them), the planner prices the
        # per-row customer look-ups high enough to compile the statement (JIT, with inlining and optimization):
        # 0.9-1.9 s of a 20,000-row chunk's 3-5 s, for a plan that runs once.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, params)
        return cursor.fetchall()


def _id_ranges(where: str, params: dict, chunk_size: int) -> list[tuple[int, int]]:
    """Consecutive id ranges covering the due rows, each holding ``chunk_size`` of them (the last fewer).

    Counted in due rows, not ids: a move's rows are spread over the table (a third of them for a
    provider's), so ranges of ``chunk_size`` ids made three times the transactions, each paying a commit,
    the state hooks, an invalidation row and the cache round trips. The ranges are consecutive from the
    first due id to the last, so a row that falls due inside them during the sweep is still moved."""
    # Planned apart (MATERIALIZED) so the due rows are found through the deadline indexes, at a cost that
    # follows how many are due; asked for the ids directly, PostgreSQL walks the primary key and, for a move
    # with nothing due, reads the whole table.
    sql = f"""
        WITH due AS MATERIALIZED (SELECT s.id FROM {TABLE} s WHERE {where})
        SELECT min(id), max(id) FROM (
            SELECT id, (row_number() OVER (ORDER BY id) - 1) / %(chunk_size)s AS n FROM due
        ) d GROUP BY n ORDER BY n
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "chunk_size": chunk_size})
        groups = cursor.fetchall()
    if not groups:
        return []
    return [(groups[0][0] if i == 0 else groups[i - 1][1] + 1, hi) for i, (_, hi) in enumerate(groups)]


# --- dunning -------------------------------------------------------------------------------

# When an on-hold subscription lapsed, as the model says (with no date to count from, no retries).
_HOLD_LAPSE = "COALESCE({})".format(", ".join(f"s.{c}" for c in lapse_instant(S.ON_HOLD).columns if c != EFFECTIVE))


def _dunning_chunk(provider: str, rule: PlatformRule, until: datetime | None, lo: int, hi: int, now: datetime) -> int:
    offsets = rule.dunning_offsets
    sql = f"""
        INSERT INTO subscriptions_dunningattempt (subscription_id, attempt, due_at, status, created_at)
        SELECT s.id, o.n, {_HOLD_LAPSE} + o.off, %(status)s, %(now)s
        FROM {TABLE} s
        -- one index probe per subscription for the retries already recorded, not one per retry
        CROSS JOIN LATERAL (
            SELECT COALESCE(max(d.attempt), 0) AS done
            FROM subscriptions_dunningattempt d WHERE d.subscription_id = s.id
        ) recorded
        CROSS JOIN unnest(%(numbers)s::int[], %(offsets)s::interval[]) AS o(n, off)
        WHERE s.id BETWEEN %(lo)s AND %(hi)s AND s.state = %(state)s AND s.provider = %(provider)s
          -- before the per-subscription probe: skip those whose first retry is not due yet
          AND {_HOLD_LAPSE} + %(first_offset)s <= %(now)s
          AND o.n > recorded.done
          AND {_HOLD_LAPSE} >= %(since)s
          AND (%(until)s::timestamptz IS NULL OR {_HOLD_LAPSE} < %(until)s::timestamptz)
          AND {_HOLD_LAPSE} + o.off <= %(now)s
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


def _run_dunning(now: datetime, chunk_size: int, progress: Progress | None) -> int:
    created = 0
    for provider, versions in all_rules().items():
        for i, rule in enumerate(versions):
            if not rule.dunning_offsets:
                continue
            until = versions[i + 1].since if i + 1 < len(versions) else None
            # Only the range of subscriptions whose first retry has come due (none: nothing to scan).
            ranges = _id_ranges(
                f"s.state = %(state)s AND s.provider = %(provider)s AND {_HOLD_LAPSE} <= %(first_due)s",
                {"state": S.ON_HOLD, "provider": provider, "first_due": now - min(rule.dunning_offsets)},
                chunk_size,
            )
            for index, (lo, hi) in enumerate(ranges, start=1):
                with transaction.atomic():
                    created += _dunning_chunk(provider, rule, until, lo, hi, now)
                if progress:
                    progress(f"dunning:{provider}:{rule.since.date()}", index, len(ranges), created)
    return created


# --- the sweep -------------------------------------------------------------------------------

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
    result = SweepResult()
    dunning_done = False
    for move in sweep_moves():
        if move.source == S.ON_HOLD and not dunning_done:
            # Retries due before the hold ends are recorded before it expires (also on a late sweep).
            result.dunning_attempts += _run_dunning(now, chunk_size, progress)
            dunning_done = True
        params = _Params()
        ranges = _id_ranges(_where(move, now, params), params, chunk_size)
        cause = Cause.task(SWEEP_NAME, move.reason)
        moved = 0
        for index, (lo, hi) in enumerate(ranges, start=1):
            with transaction.atomic():
                rows = _move_chunk(move, lo, hi, now)
                if rows:
                    moved += len(rows)
                    state_hooks_run(
                        StateMoves(
                            source=move.source,
                            target=move.target,
                            transition=move.transition,
                            cause=cause,
                            subscription_ids=[row[0] for row in rows],
                        )
                    )
                    # One invalidation row for the chunk; its keys are deleted on commit in slices.
                    entitlements_invalidate(row[1] for row in rows)
            if progress:
                progress(move.name, index, len(ranges), moved)
        if moved:
            result.moved[move.name] = moved
    if not dunning_done:
        result.dunning_attempts += _run_dunning(now, chunk_size, progress)
    return result

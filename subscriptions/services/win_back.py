"""Win-back: pick lapsed and churned customers by rule, set-based, and tell the messaging service.

Each rule's run is one INSERT ... SELECT per chunk: the customers whose subscription ended ``lapsed_days``
ago (within the rule's window), for the rule's reason, who have nothing live now and were not targeted by
the rule within the window. ``ON CONFLICT DO NOTHING`` on (rule, customer, window number) keeps two runs
at once from targeting anyone twice. Each target's audit row (``win_back.target``) is written in the
chunk's transaction and is the outbound event (WIN_BACK_TARGETED, published by the outbox relay), so a
target and its event commit together. Conversion is measured set-based
too: a target converts when the customer has a subscription that started (or restarted: an App Store
resubscribe keeps its original transaction) within the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from monetization import clock
from monetization.models import AuditEvent
from monetization.services.audit import audit_event_build, audit_events_write, audit_record, snapshot
from monetization.services.permissions import require_perm
from subscriptions.models import Subscription, WinBackRule

RULE_FIELDS = [
    "key",
    "reason",
    "product_id",
    "lapsed_days",
    "window_days",
    "cancel_reasons",
    "apple_win_back_offer_id",
    "play_offer_id",
    "stripe_coupon_id",
    "is_active",
]
LIVE = tuple(str(s) for s in Subscription.LIVE_STATES)


@dataclass(frozen=True)
class WinBackRun:
    targeted: dict[str, int]
    converted: int


def window_number(rule: WinBackRule, at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=at.tzinfo)).days // rule.window_days


_REASON_SQL = {
    WinBackRule.Reason.LAPSED: "TRUE",
    WinBackRule.Reason.CANCELLED_FOR_PRICE: "s.cancel_reason = ANY(%(cancel_reasons)s)",
    # A renewal failed and was never paid: activation clears billing_issue_at, expiry keeps it.
    WinBackRule.Reason.BILLING_ISSUE: "s.billing_issue_at IS NOT NULL",
}

_TARGET_SQL = """
    WITH picked AS (
        SELECT DISTINCT ON (s.customer_id) s.customer_id, s.id AS subscription_id
        FROM subscriptions_subscription s
        WHERE s.state = 'expired'
          AND s.ended_at <= %(lapsed_before)s AND s.ended_at > %(lapsed_after)s
          AND ({reason})
          AND (%(product)s::bigint IS NULL
               OR s.plan_id IN (SELECT id FROM subscriptions_plan WHERE product_id = %(product)s::bigint))
          AND NOT EXISTS (
              SELECT 1 FROM subscriptions_subscription live
              WHERE live.customer_id = s.customer_id AND live.state = ANY(%(live)s))
          AND NOT EXISTS (
              SELECT 1 FROM subscriptions_winbacktarget t
              WHERE t.rule_id = %(rule)s AND t.customer_id = s.customer_id AND t.targeted_at > %(window_start)s)
        ORDER BY s.customer_id, s.ended_at DESC
        LIMIT %(chunk)s
    ), inserted AS (
        INSERT INTO subscriptions_winbacktarget (rule_id, customer_id, subscription_id, "window", targeted_at,
                                                 window_ends_at)
        SELECT %(rule)s, customer_id, subscription_id, %(window)s, %(now)s, %(window_ends_at)s FROM picked
        ON CONFLICT DO NOTHING
        RETURNING id, customer_id, subscription_id
    )
    SELECT i.id, i.customer_id, s.platform, p.code, s.ended_at
    FROM inserted i JOIN subscriptions_subscription s ON s.id = i.subscription_id
    JOIN subscriptions_plan p ON p.id = s.plan_id
"""


def _target_audit(rule: WinBackRule, now: datetime, offers: dict, window_ends_at: datetime, row: tuple):
    target_id, customer_id, platform, plan_code, ended_at = row
    event = audit_event_build(
        action="win_back.target",
        object_type="subscriptions.winbacktarget",
        object_id=target_id,
        actor_kind=AuditEvent.ActorKind.SYSTEM,
        actor_label="task:win_back_run",
        after={
            "rule": rule.key,
            "reason": rule.reason,
            "platform": platform,
            "plan": plan_code,
            "ended_at": ended_at,
            "window_ends_at": window_ends_at,
            "offers": offers,
        },
        reason=rule.reason,
    )
    event.customer_id, event.occurred_at = customer_id, now
    return event


def win_back_targets_pick(*, rule: WinBackRule, now: datetime | None = None, chunk: int | None = None) -> int:
    """Target the rule's customers (chunk by chunk, each in its own transaction); how many were targeted."""
    now = now or clock.now()
    chunk = chunk or settings.WIN_BACK_CHUNK
    window = timedelta(days=rule.window_days)
    lapsed_before = now - timedelta(days=rule.lapsed_days)
    params = {
        "rule": rule.pk,
        "lapsed_before": lapsed_before,
        "lapsed_after": lapsed_before - window,
        "cancel_reasons": list(rule.cancel_reasons),
        "product": rule.product_id,
        "live": list(LIVE),
        "window_start": now - window,
        "window": window_number(rule, now),
        "now": now,
        "window_ends_at": now + window,
        "chunk": chunk,
    }
    sql = _TARGET_SQL.format(reason=_REASON_SQL[rule.reason])
    offers = rule.offers()
    total = 0
    while True:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                rows = cursor.fetchall()
            # One audit row per target, in the chunk's transaction: the row is the event (the outbox relay
            # publishes it as WIN_BACK_TARGETED, its ``after`` as the event's data).
            audit_events_write([_target_audit(rule, now, offers, params["window_ends_at"], row) for row in rows])
        total += len(rows)
        if len(rows) < chunk:
            return total


_CONVERSION_SQL = """
    UPDATE subscriptions_winbacktarget t SET converted_at = c.at
    FROM (
        SELECT t2.id, MIN(CASE WHEN s.started_at >= t2.targeted_at THEN s.started_at
                               ELSE s.current_period_start END) AS at
        FROM subscriptions_winbacktarget t2
        JOIN subscriptions_subscription s ON s.customer_id = t2.customer_id
        WHERE t2.converted_at IS NULL AND t2.window_ends_at > %(since)s
          AND s.state NOT IN ('pending', 'revoked')
          AND ((s.started_at >= t2.targeted_at AND s.started_at < t2.window_ends_at)
               OR (s.current_period_start >= t2.targeted_at AND s.current_period_start < t2.window_ends_at))
        GROUP BY t2.id
    ) c
    WHERE t.id = c.id
"""


def win_back_conversions_measure(*, now: datetime | None = None) -> int:
    """Mark targets whose customer resubscribed within the window (windows closed a week ago are settled)."""
    now = now or clock.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CONVERSION_SQL, {"since": now - timedelta(days=7)})
        return cursor.rowcount


def win_back_run(*, now: datetime | None = None) -> WinBackRun:
    """The scheduled run: every active rule's targets, then the conversions. Idempotent."""
    now = now or clock.now()
    targeted = {
        rule.key: win_back_targets_pick(rule=rule, now=now) for rule in WinBackRule.objects.filter(is_active=True)
    }
    return WinBackRun(targeted=targeted, converted=win_back_conversions_measure(now=now))


def win_back_rule_saved(*, actor, rule: WinBackRule, created: bool, before: dict | None = None) -> None:
    """Audit a staff edit of a win-back rule (the admin saves the form in a transaction, then calls this)."""
    require_perm(actor, "subscriptions.add_winbackrule" if created else "subscriptions.change_winbackrule")
    audit_record(
        action="win_back_rule.created" if created else "win_back_rule.changed",
        obj=rule,
        actor=actor,
        before=before,
        after=snapshot(rule, RULE_FIELDS),
    )

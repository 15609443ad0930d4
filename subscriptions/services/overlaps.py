"""Two-platform detection: customers paying on two platforms at once for the same entitlements.

A daily job (:func:`overlaps_detect`, on the beat schedule) finds them in one set-based statement:
subscriptions that are paid and renewing (active or in grace, auto-renew on), joined through their
products' entitlements, pairs of the same customer on different providers sharing one. Each
customer's overlap becomes (or refreshes) one :class:`OverlapCase` in Support's queue, with the
suggested fix: the web (Stripe) subscription is the one to end, since we can cancel and refund it
ourselves; between two stores, the newer one, which only the customer can cancel, on the store's
manage page. Open cases the run no longer finds (one was cancelled, or ran out) close themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django_fsm import can_proceed

from monetization import clock
from monetization.errors import ErrorCode, IllegalTransition, InvalidInput
from monetization.models import AuditEvent, Provider
from monetization.providers import provider_manage_url
from monetization.services.audit import audit_event_build, audit_events_write, audit_record, snapshot
from monetization.services.permissions import require_perm
from subscriptions.models import Entitlement, OverlapCase, Plan, Product, Subscription

PAID_STATES = [str(Subscription.State.ACTIVE), str(Subscription.State.IN_GRACE_PERIOD)]
CASE_FIELDS = ["state", "decision_reason"]
SYSTEM_LABEL = "task:overlaps_detect"

_DETECT = """
WITH paid AS (
    SELECT s.id, s.customer_id, s.provider, pe.entitlement_id
    FROM {subscription} s
    JOIN {plan} p ON p.id = s.plan_id
    JOIN {product_entitlements} pe ON pe.product_id = p.product_id
    WHERE s.state = ANY(%(states)s) AND s.auto_renew
),
overlapping AS (
    SELECT DISTINCT a.customer_id, a.id AS subscription_id, a.provider, a.entitlement_id
    FROM paid a
    JOIN paid b ON b.customer_id = a.customer_id AND b.entitlement_id = a.entitlement_id AND b.provider <> a.provider
),
found AS (
    SELECT o.customer_id,
           array_agg(DISTINCT o.subscription_id ORDER BY o.subscription_id) AS subscription_ids,
           array_agg(DISTINCT o.provider ORDER BY o.provider) AS providers,
           array_agg(DISTINCT e.key ORDER BY e.key) AS entitlement_keys
    FROM overlapping o JOIN {entitlement} e ON e.id = o.entitlement_id
    GROUP BY o.customer_id
),
suggested AS (
    SELECT f.*,
           (SELECT s.id FROM {subscription} s WHERE s.id = ANY(f.subscription_ids)
            ORDER BY (s.provider = %(web)s) DESC, s.started_at DESC, s.id DESC LIMIT 1) AS end_id
    FROM found f
)
INSERT INTO {case} (customer_id, subscription_ids, providers, entitlement_keys, end_id, keep_id, fix,
                    manage_url, state, detected_at, last_seen_at, decision_reason)
SELECT g.customer_id, g.subscription_ids, g.providers, g.entitlement_keys, g.end_id,
       (SELECT k.id FROM {subscription} k WHERE k.id = ANY(g.subscription_ids)
          AND k.provider <> (SELECT provider FROM {subscription} WHERE id = g.end_id)
        ORDER BY k.started_at DESC, k.id DESC LIMIT 1),
       CASE WHEN %(web)s = ANY(g.providers) THEN %(cancel_web)s ELSE %(cancel_in_store)s END,
       '', %(open)s, %(now)s, %(now)s, ''
FROM suggested g
ON CONFLICT (customer_id, subscription_ids) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at
RETURNING id, (xmax = 0) AS inserted
"""

_CLOSE = """
UPDATE {case} SET state = %(resolved)s, decided_at = %(now)s, decision_reason = %(reason)s
WHERE state = %(open)s AND last_seen_at < %(now)s
RETURNING id, customer_id
"""

NO_LONGER = "No longer paying twice: the overlap ended (a subscription was cancelled, revoked or ran out)."


@dataclass(frozen=True)
class OverlapRun:
    opened: int
    still_found: int  # found again: open, or closed by Support (a dismissed one stays dismissed)
    closed: int


def _tables() -> dict[str, str]:
    return {
        "subscription": Subscription._meta.db_table,
        "plan": Plan._meta.db_table,
        "product_entitlements": Product.entitlements.through._meta.db_table,
        "entitlement": Entitlement._meta.db_table,
        "case": OverlapCase._meta.db_table,
    }


def overlaps_detect() -> OverlapRun:
    """Open a case for each new overlap, refresh those still there, close those gone: three statements
    (and the new cases' store links and audit events), whatever the number of subscriptions."""
    now = clock.now()
    params = {
        # Plain strings: the choices' enum members are not what the driver should be left to adapt.
        "states": PAID_STATES,
        "web": str(Provider.STRIPE),
        "cancel_web": str(OverlapCase.Fix.CANCEL_WEB),
        "cancel_in_store": str(OverlapCase.Fix.CANCEL_IN_STORE),
        "open": str(OverlapCase.State.OPEN),
        "resolved": str(OverlapCase.State.RESOLVED),
        "now": now,
        "reason": NO_LONGER,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_DETECT.format(**_tables()), params)
        rows = cursor.fetchall()
        cursor.execute(_CLOSE.format(**_tables()), params)
        closed = cursor.fetchall()
        opened = [pk for pk, inserted in rows if inserted]
        cases = list(OverlapCase.objects.filter(pk__in=opened).select_related("customer", "end__sku"))
        for case in cases:
            end = case.end
            if case.fix == OverlapCase.Fix.CANCEL_IN_STORE and end is not None:
                case.manage_url = provider_manage_url(end.provider, end.sku.store_product_id if end.sku else "")
        OverlapCase.objects.bulk_update(cases, ["manage_url"])
        events = [
            audit_event_build(
                action="subscription.overlap_detected",
                obj=case,
                actor_kind=AuditEvent.ActorKind.SYSTEM,
                actor_label=SYSTEM_LABEL,
                customer=case.customer,
                after={
                    "subscriptions": case.subscription_ids,
                    "providers": case.providers,
                    "entitlements": case.entitlement_keys,
                    "end": case.end_id,
                    "keep": case.keep_id,
                    "fix": case.fix,
                },
            )
            for case in cases
        ]
        for pk, customer_id in closed:
            event = audit_event_build(
                action="subscription.overlap_resolve",
                object_type=OverlapCase._meta.label_lower,
                object_id=pk,
                actor_kind=AuditEvent.ActorKind.SYSTEM,
                actor_label=SYSTEM_LABEL,
                before={"state": OverlapCase.State.OPEN},
                after={"state": OverlapCase.State.RESOLVED},
                reason=NO_LONGER,
            )
            event.customer_id = customer_id
            events.append(event)
        audit_events_write(events)
    return OverlapRun(opened=len(opened), still_found=len(rows) - len(opened), closed=len(closed))


def overlap_case_decide(*, case: OverlapCase, user, decision: str, reason: str) -> OverlapCase:
    """Support closes a case: ``resolve`` (the fix was made) or ``dismiss`` (not a double payment:
    a family member's account, a planned switch), always with a reason, audited."""
    if decision not in ("resolve", "dismiss"):
        raise InvalidInput(f"Unknown decision {decision!r}: resolve or dismiss.")
    require_perm(user, "subscriptions.decide_overlapcase")
    if not (reason or "").strip():
        raise InvalidInput("Closing a two-platform case needs a reason.", code=ErrorCode.REASON_REQUIRED)
    with transaction.atomic():
        locked = OverlapCase.objects.select_for_update().select_related("customer").get(pk=case.pk)
        step = getattr(locked, decision)
        if not can_proceed(step):
            raise IllegalTransition(f"This case is {locked.state}; only an open case can be closed.")
        before = snapshot(locked, CASE_FIELDS)
        step(reason=reason.strip())
        locked.decided_at = clock.now()
        locked.decided_by = user
        locked.save()
        audit_record(
            action=f"subscription.overlap_{decision}",
            obj=locked,
            actor=user,
            customer=locked.customer,
            before=before,
            after=snapshot(locked, CASE_FIELDS),
            reason=reason.strip(),
        )
    return locked

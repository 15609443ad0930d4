"""Eligibility for revenue sharing: configurable rules (settings.CREATOR_ELIGIBILITY), every
decision recorded with, per rule, the measured value against the threshold.

Defaults are X's public rules: an active Premium subscription or verified organization
(an entitlement among ``premium_entitlements``), >= 5M organic impressions over the last
3 months, >= 500 verified followers, an account at least 3 months old.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import Sum

from monetization import clock
from monetization.services.permissions import System
from subscriptions.entitlements import resolve_entitlements

from ..models import CreatorAccount, CreatorStats, DailyEngagement, EligibilityDecision

DEFAULTS = {
    "premium_entitlements": ["verified_badge", "org_gold_badge", "affiliate_badge"],
    "min_impressions": 5_000_000,
    "impressions_months": 3,
    "min_verified_followers": 500,
    "min_account_age_months": 3,
}

# States whose eligibility the scheduled task re-evaluates. Only applied/eligible/ineligible
# accounts move on a decision; onboarding/active ones get the decision recorded for Compliance,
# who decide on suspension (a bad month should not silently cut a creator off).
REEVALUATED_STATES = (
    CreatorAccount.State.APPLIED,
    CreatorAccount.State.ELIGIBLE,
    CreatorAccount.State.INELIGIBLE,
    CreatorAccount.State.ONBOARDING,
    CreatorAccount.State.ACTIVE,
)
MOVABLE_STATES = (CreatorAccount.State.APPLIED, CreatorAccount.State.ELIGIBLE, CreatorAccount.State.INELIGIBLE)


def rules() -> dict:
    return {**DEFAULTS, **getattr(settings, "CREATOR_ELIGIBILITY", {})}


def add_months(value, months: int):
    """Calendar month arithmetic, clamping the day (Mar 31 - 1 month = Feb 28/29)."""
    month_index = value.month - 1 + months
    year = value.year + month_index // 12
    month = month_index % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


def evaluate(
    *, entitlement_keys: set[str], impressions: int, verified_followers: int, account_created_at, at, config=None
) -> tuple[bool, dict]:
    """Pure rule evaluation: (eligible, reasons per rule)."""
    config = config or rules()
    wanted = sorted(config["premium_entitlements"])
    found = sorted(entitlement_keys & set(wanted))
    cutoff = add_months(at, -int(config["min_account_age_months"]))
    reasons = {
        "premium": {"passed": bool(found), "measured": found, "threshold": f"any of {wanted}"},
        "impressions": {
            "passed": impressions >= config["min_impressions"],
            "measured": impressions,
            "threshold": config["min_impressions"],
            "window_months": config["impressions_months"],
        },
        "verified_followers": {
            "passed": verified_followers >= config["min_verified_followers"],
            "measured": verified_followers,
            "threshold": config["min_verified_followers"],
        },
        "account_age": {
            "passed": account_created_at is not None and account_created_at <= cutoff,
            "measured": account_created_at.isoformat() if account_created_at else None,
            "threshold": f"created on or before {cutoff.isoformat()}",
        },
    }
    return all(r["passed"] for r in reasons.values()), reasons


def impressions_window(at) -> tuple[datetime.date, datetime.date]:
    """[start, end) days of the impressions window ending today (exclusive of today)."""
    end = at.date()
    return add_months(end, -int(rules()["impressions_months"])), end


def eligibility_evaluate_many(
    *, creator_ids: Sequence[int], actor=None, apply: bool = True
) -> list[EligibilityDecision]:
    """Evaluate a chunk of creators set-based (one aggregate for impressions), record every decision,
    and move applied/eligible/ineligible accounts to the outcome."""
    from .accounts import creator_transition

    at = clock.now()
    start, end = impressions_window(at)
    creators = list(
        CreatorAccount.objects.filter(pk__in=creator_ids, state__in=REEVALUATED_STATES).values_list(
            "id", "customer_id", "state"
        )
    )
    ids = [c[0] for c in creators]
    impressions = dict(
        DailyEngagement.objects.filter(creator_id__in=ids, day__gte=start, day__lt=end)
        .values("creator_id")
        .annotate(total=Sum("impressions"))
        .values_list("creator_id", "total")
    )
    stats = {
        s.creator_id: s
        for s in CreatorStats.objects.filter(creator_id__in=ids).only(
            "creator_id", "verified_followers", "account_created_at"
        )
    }
    config = rules()
    decisions = []
    moves = []
    for creator_id, customer_id, state in creators:
        keys = {e.key for e in resolve_entitlements(customer_id, at=at)}
        st = stats.get(creator_id)
        eligible, reasons = evaluate(
            entitlement_keys=keys,
            impressions=int(impressions.get(creator_id) or 0),
            verified_followers=st.verified_followers if st else 0,
            account_created_at=st.account_created_at if st else None,
            at=at,
            config=config,
        )
        decisions.append(
            EligibilityDecision(
                creator_id=creator_id, decided_at=at, eligible=eligible, reasons=reasons, decided_by=actor
            )
        )
        if apply and state in MOVABLE_STATES:
            target = CreatorAccount.State.ELIGIBLE if eligible else CreatorAccount.State.INELIGIBLE
            if state != target:
                failed = [name for name, r in reasons.items() if not r["passed"]]
                moves.append((creator_id, "mark_eligible" if eligible else "mark_ineligible", failed))
    with transaction.atomic():
        EligibilityDecision.objects.bulk_create(decisions)
        for creator_id, name, failed in moves:
            creator_transition(
                creator_id=creator_id,
                transition=name,
                reason="rules passed" if not failed else "failed: " + ", ".join(failed),
                actor=System("eligibility re-evaluation"),
            )
    return decisions


def eligibility_evaluate(*, creator_id: int, actor=None) -> EligibilityDecision:
    decisions = eligibility_evaluate_many(creator_ids=[creator_id], actor=actor)
    if not decisions:
        from monetization.errors import Conflict

        raise Conflict("This creator's state is not re-evaluated (suspended or banned).")
    return decisions[0]


def reevaluation_chunks(*, chunk_size: int = 1000):
    """Creator ids to re-evaluate, in id-ordered chunks (keyset pagination, no OFFSET)."""
    last = 0
    while True:
        ids = list(
            CreatorAccount.objects.filter(state__in=REEVALUATED_STATES, pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return
        yield ids
        last = ids[-1]

"""Demo data for revenue sharing: creators in every state, three months of engagement,
one closed cycle and one awaiting approval. Idempotent; works on SQLite (no PG-only SQL here)."""

from __future__ import annotations

import datetime
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from djmoney.money import Money

from creators.models import (
    CreatorAccount,
    CreatorStats,
    DailyEngagement,
    EligibilityDecision,
    PayoutProfile,
    RevenueShareCycle,
)
from creators.services.cycles import cycle_approve, cycle_close, cycle_compute, cycle_submit, period_revenue
from creators.services.eligibility import add_months
from creators.services.engagement import ensure_engagement_partitions
from creators.services.payouts import cycle_pay
from monetization import clock
from monetization.demo.providers import FakePayoutProvider
from monetization.models import Customer
from monetization.roles import sync_roles
from monetization.services.ledger import Leg, Posting, journal_post

S = CreatorAccount.State
PLAN = [
    (S.ACTIVE, 30),
    (S.APPLIED, 4),
    (S.ELIGIBLE, 4),
    (S.INELIGIBLE, 4),
    (S.ONBOARDING, 4),
    (S.SUSPENDED, 2),
    (S.BANNED, 2),
]


def _approver(username: str):
    sync_roles()
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    if created:
        user.set_unusable_password()
        user.save()
    user.groups.add(Group.objects.get(name="Finance"))
    return get_user_model().objects.get(pk=user.pk)


def seed(*, rng, out, options=None) -> None:
    wanted = sum(n for _, n in PLAN)
    customers = list(Customer.objects.order_by("id")[:wanted])
    if len(customers) < wanted:
        out.write(f"  creators: need {wanted} demo customers, found {len(customers)}; skipped")
        return
    now = clock.now()
    states = [state for state, n in PLAN for _ in range(n)]
    creators = []
    for i, (customer, state) in enumerate(zip(customers, states, strict=True)):
        creator, created = CreatorAccount.objects.get_or_create(
            customer=customer, defaults={"state": state, "applied_at": now - datetime.timedelta(days=200)}
        )
        if created:
            complete = state in (S.ACTIVE, S.SUSPENDED, S.BANNED)
            CreatorStats.objects.create(
                creator=creator,
                verified_followers=rng.randint(100, 50_000) if state != S.INELIGIBLE else rng.randint(0, 499),
                account_created_at=now - datetime.timedelta(days=rng.randint(120, 3000)),
            )
            PayoutProfile.objects.create(
                creator=creator,
                payout_account_id=f"acct_demo{customer.pk:010d}" if complete or i % 2 else "",
                tax_form_status=PayoutProfile.TaxFormStatus.VERIFIED
                if complete
                else PayoutProfile.TaxFormStatus.MISSING,
                tax_form_type=PayoutProfile.TaxFormType.W9 if complete else "",
                verified_at=now if complete else None,
            )
            eligible = state not in (S.INELIGIBLE, S.APPLIED)
            EligibilityDecision.objects.create(
                creator=creator,
                decided_at=now - datetime.timedelta(days=1),
                eligible=eligible,
                reasons={
                    "verified_followers": {
                        "passed": eligible,
                        "measured": creator.stats.verified_followers,
                        "threshold": 500,
                    },
                },
            )
        creators.append(creator)

    # Three full months of engagement for active/suspended/banned creators, before this month.
    this_month = now.date().replace(day=1)
    months = [add_months(this_month, -k) for k in (3, 2, 1)]
    ensure_engagement_partitions([(m.year, m.month) for m in months])
    earners = [c for c in creators if c.state in (S.ACTIVE, S.SUSPENDED, S.BANNED)]
    rows = []
    for c in earners:
        size = rng.choice([200, 2_000, 20_000, 200_000])
        for month in months:
            day = month
            while day.month == month.month:
                base = int(size * rng.uniform(0.5, 1.5))
                rows.append(
                    DailyEngagement(
                        creator=c,
                        day=day,
                        source="premium",
                        impressions=base,
                        replies=base // 200,
                        likes=base // 40,
                        reposts=base // 300,
                    )
                )
                day += datetime.timedelta(days=1)
    # A sudden jump for one creator, for the anomaly panel.
    if rows:
        rows[-3].impressions *= 40
    DailyEngagement.objects.bulk_create(
        rows,
        batch_size=500,
        update_conflicts=True,
        unique_fields=["creator", "day", "source"],
        update_fields=["impressions", "replies", "likes", "reposts"],
    )

    # Pool revenue: the demo's own payments when there are some, else a labelled demo posting.
    for month in months[1:]:
        if not period_revenue(month).get("USD"):
            journal_post(
                Posting(
                    key=f"demo:creators:revenue:{month:%Y-%m}",
                    kind="payment",
                    legs=[
                        Leg("cash:stripe", Money(Decimal("40000.00"), "USD")),
                        Leg("revenue:subscriptions", Money(Decimal("-40000.00"), "USD")),
                    ],
                    memo="demo revenue (no payments seeded for this month)",
                    posted_at=datetime.datetime(month.year, month.month, 15, tzinfo=datetime.UTC),
                )
            )

    first, second = _approver("demo-finance-alex"), _approver("demo-finance-blake")
    closed, pending = months[1], months[2]
    cycle, _ = RevenueShareCycle.objects.get_or_create(period=closed)
    if cycle.state == RevenueShareCycle.State.OPEN:
        cycle_compute(cycle_id=cycle.pk, actor=first)
        cycle_submit(cycle_id=cycle.pk, actor=first)
        cycle_approve(cycle_id=cycle.pk, actor=second, reason="Demo: figures reviewed")
        cycle_pay(cycle_id=cycle.pk, provider=FakePayoutProvider())  # the demo pays nobody for real
        cycle_close(cycle_id=cycle.pk, actor=second, confirm=True, reason="Demo: every payout paid")
    cycle, _ = RevenueShareCycle.objects.get_or_create(period=pending)
    if cycle.state == RevenueShareCycle.State.OPEN:
        cycle_compute(cycle_id=cycle.pk, actor=first)
        cycle_submit(cycle_id=cycle.pk, actor=first)
    out.write(
        f"  creators: {len(creators)} accounts, {len(rows)} engagement rows, "
        f"cycles {closed:%Y-%m} (closed) and {pending:%Y-%m} (awaiting approval)"
    )

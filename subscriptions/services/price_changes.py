"""Plan price changes under the stores' rules (subscriptions/price_change_rules.py).

A change writes the new Price version (new subscribers pay it from ``effective_at``) and a PriceChange
saying whether existing subscribers move. Only on the web do we move them, with the rule's notice; an
App Store or Play change for existing subscribers is the store's to run (with their consent), so it is
refused here with a code, and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from djmoney.money import Money

from monetization import clock
from monetization.errors import InvalidInput, PriceChangeErrorCode
from monetization.models import AuditEvent, Provider
from monetization.providers.base import ProviderError, get_provider
from monetization.reasons import reason_check
from monetization.services.audit import audit_record
from monetization.services.permissions import require_perm
from subscriptions.models import Plan, Platform, Price, PriceChange, PriceChangePush, Subscription
from subscriptions.price_change_rules import price_change_rule
from subscriptions.selectors import COUNTRY_CODES, price_in_force

KEEP, MOVE = PriceChange.ExistingSubscribers.KEEP, PriceChange.ExistingSubscribers.MOVE


def price_change_problem(
    *, platform: str, existing_subscribers: str, announced_at: datetime, effective_at: datetime
) -> InvalidInput | None:
    """Why the rules refuse this change, or None (the admin form asks before saving)."""
    if effective_at <= announced_at:
        return InvalidInput(
            "A price change takes effect after it is announced.", code=PriceChangeErrorCode.PRICE_CHANGE_NOT_IN_FUTURE
        )
    if existing_subscribers != MOVE:
        return None
    rule = price_change_rule(platform, announced_at)
    if rule.store_runs_it:
        return InvalidInput(
            "The store moves its existing subscribers itself, with their consent (App Store Connect, Play "
            "Console); here they keep their price.",
            code=PriceChangeErrorCode.PRICE_CHANGE_STORE_CONSENT,
        )
    if effective_at - announced_at < timedelta(days=rule.notice_days):
        return InvalidInput(
            f"Existing subscribers must be told at least {rule.notice_days} days ahead.",
            code=PriceChangeErrorCode.PRICE_CHANGE_NOTICE_TOO_SHORT,
        )
    return None


def price_change_schedule(
    *,
    actor,
    plan: Plan,
    platform: str,
    country: str,
    amount: Money,
    effective_at: datetime,
    existing_subscribers: str = KEEP,
    stripe_price_id: str = "",
    reason: str,
) -> PriceChange:
    """Schedule a plan's new price in one country on one platform (checked, audited, all or nothing)."""
    require_perm(actor, "subscriptions.add_pricechange")
    reason = reason_check(reason)
    country = country.strip().upper()
    if country not in COUNTRY_CODES or platform not in Platform.values:
        raise InvalidInput("Give a known platform and an ISO 3166-1 alpha-2 country.")
    announced_at = clock.now()
    problem = price_change_problem(
        platform=platform,
        existing_subscribers=existing_subscribers,
        announced_at=announced_at,
        effective_at=effective_at,
    )
    if problem is not None:
        raise problem
    with transaction.atomic():
        price = Price.objects.create(
            plan=plan, platform=platform, country=country, amount=amount, valid_from=effective_at
        )
        change = PriceChange.objects.create(
            plan=plan,
            platform=platform,
            country=country,
            amount=amount,
            price=price,
            existing_subscribers=existing_subscribers,
            announced_at=announced_at,
            effective_at=effective_at,
            reason=reason,
            created_by=actor if getattr(actor, "pk", None) else None,
            stripe_price_id=stripe_price_id.strip() if platform == Platform.WEB else "",
        )
        audit_record(
            action="price_change.scheduled",
            obj=change,
            actor=actor,
            reason=reason,
            after={
                "plan": plan.code,
                "platform": platform,
                "country": country,
                "amount": str(amount.amount),
                "currency": amount.currency.code,
                "effective_at": effective_at.isoformat(),
                "existing_subscribers": existing_subscribers,
                "stripe_price_id": change.stripe_price_id,
            },
        )
    return change


def subscription_price(subscription: Subscription, *, country: str, at: datetime | None = None) -> Price | None:
    """The price an existing subscriber pays for the period renewing at ``at``: the version in force when they
    subscribed, unless a web change moves existing subscribers, or the subscriber accepted a store's increase
    (``price_consented_at``), and it is effective by then. One who has not answered keeps their price."""
    at = at or clock.now()
    versions = list(
        Price.objects.filter(
            plan_id=subscription.plan_id,
            country=country.upper(),
            platform__in=["", subscription.platform],
            component=Price.Component.BASE,
        ).select_related("change")
    )

    def in_force(prices: list[Price], moment: datetime) -> Price | None:
        return price_in_force(
            prices, platform=subscription.platform, country=country.upper(), component=Price.Component.BASE, at=moment
        )

    consented = subscription.price_consented_at

    def moves(change: PriceChange) -> bool:
        # The web moves existing subscribers by the change itself; a store moves those who accepted it
        # (App Store consent, Play confirmation) once it was announced to them.
        if change.existing_subscribers == MOVE:
            return True
        return consented is not None and change.platform == subscription.platform and change.announced_at <= consented

    moved = [
        p
        for p in versions
        if getattr(p, "change", None) is not None and p.valid_from > subscription.started_at and moves(p.change)
    ]
    return in_force(moved, at) or in_force(versions, subscription.started_at)


# The renewing states: a subscription that will be invoiced again at its period end.
RENEWING = [Subscription.State.TRIALING, Subscription.State.ACTIVE, Subscription.State.IN_GRACE_PERIOD]


@dataclass(frozen=True)
class PriceChangePushRun:
    claimed: int
    pushed: int
    failed: int


def price_change_pushes_claim(*, now: datetime) -> int:
    """Claim every web subscription a moving change reaches at its next renewal: subscribed before the change's
    date, renewing, in its country, its current period ending on or after that date. One insert per change;
    the unique (change, subscription) makes a second run (or two at once) claim nobody twice."""
    changes = PriceChange.objects.filter(
        platform=Platform.WEB, existing_subscribers=MOVE, announced_at__lte=now
    ).exclude(stripe_price_id="")
    claimed = 0
    for change in changes:
        subs = (
            Subscription.objects.filter(
                plan_id=change.plan_id,
                platform=Platform.WEB,
                provider=Provider.STRIPE,
                customer__country=change.country,
                started_at__lt=change.effective_at,
                auto_renew=True,
                state__in=RENEWING,
                current_period_end__gte=change.effective_at,
            )
            .exclude(pk__in=PriceChangePush.objects.filter(change=change).values("subscription_id"))
            .values_list("pk", flat=True)
        )
        rows = [PriceChangePush(change=change, subscription_id=pk, claimed_at=now) for pk in subs]
        claimed += len(PriceChangePush.objects.bulk_create(rows, ignore_conflicts=True))
    return claimed


def price_changes_push(*, now: datetime | None = None) -> PriceChangePushRun:
    """Move web subscribers to a change's Stripe price before the renewal it takes effect at (proration none: the
    period already paid keeps the old price). Each claimed subscription is pushed once: under its own row lock
    (``SKIP LOCKED``, so two runs share the work), with an idempotency key of its claim, so a push retried after
    a crash is one update at Stripe. A refusal is kept on the claim; an outage leaves it for the next run."""
    now = now or clock.now()
    claimed = price_change_pushes_claim(now=now)
    pushed = failed = 0
    tried: set[int] = set()
    while True:
        with transaction.atomic():
            push = (
                PriceChangePush.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("change", "subscription__customer")
                .filter(pushed_at__isnull=True, error="")
                .exclude(pk__in=tried)
                .order_by("change__effective_at", "pk")
                .first()
            )
            if push is None:
                break
            tried.add(push.pk)
            sub, change = push.subscription, push.change
            try:
                get_provider(sub.provider).move_subscription_price(
                    sub.provider_subscription_id,
                    store_product_id=change.stripe_price_id,
                    idempotency_key=push.idempotency_key,
                )
            except ProviderError as exc:
                if exc.retryable:
                    continue  # Stripe unreachable: the claim waits for the next run
                push.error = f"{exc.code}: {exc}"[:200]
                push.save(update_fields=["error"])
                failed += 1
                continue
            push.pushed_at = clock.now()
            push.save(update_fields=["pushed_at"])
            audit_record(
                action="subscription.price_moved",
                obj=sub,
                actor_kind=AuditEvent.ActorKind.SYSTEM,
                actor_label="task:price_changes_push",
                customer=sub.customer,
                after={
                    "price_change": change.pk,
                    "stripe_price_id": change.stripe_price_id,
                    "amount": str(change.amount.amount),
                    "currency": change.amount.currency.code,
                    "effective_at": change.effective_at.isoformat(),
                },
                reason="Web price change: existing subscribers move at their first renewal on or after its date.",
            )
            pushed += 1
    return PriceChangePushRun(claimed=claimed, pushed=pushed, failed=failed)

"""One state machine: the set-based sweep and the provider path search make only the moves the
model's transitions would make on the same row, conditions and field effects included.

The sweep runs SQL; the model runs Python on an instance. For every deadline the model declares,
every provider, every dated rule version and every product kind, a subscription just due is built
and saved; the sweep's result is compared with what the model's own transition does to a copy
(which transition, which state, which dates). Every move the sweep has is exercised this way.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django_fsm import can_proceed

from monetization import clock
from monetization.models import AuditEvent
from subscriptions.models import Product, Subscription
from subscriptions.platform_rules import all_rules
from subscriptions.services import sweep as sweep_module
from subscriptions.services.lifecycle import (
    Cause,
    StateMoves,
    state_hooks,
    subscription_change_in_memory,
    transition_path,
)
from subscriptions.services.sweep import lifecycle_sweep, sweep_moves
from tests.subscriptions.factories import PlanFactory, ProductFactory, SubscriptionFactory

S = Subscription.State
PLATFORM = {"app_store": "ios", "google_play": "android", "stripe": "web", "internal": "web"}
# What the sweep may change, compared field by field with the model's transition.
COMPARED = ["state", "billing_issue_at", "grace_end", "hold_end", "ended_at", "auto_renew", "current_period_end"]

# Dated rule versions beyond the defaults: a rule change that removes App Store grace, Play with
# 30 days of grace and no hold, Stripe with no past_due window (so lapses expire at once).
MORE_VERSIONS = {
    "app_store": [
        {"since": "2000-01-01", "grace_days": 16, "weekly_grace_days": 6, "billing_retry_days": 60},
        {"since": "2026-06-01", "grace_days": 0},
    ],
    "google_play": [
        {"since": "2000-01-01", "grace_days": 7, "hold_days": 30},
        {"since": "2025-12-01", "hold_days": None},
        {"since": "2027-01-01", "grace_days": 30, "hold_days": 0},
    ],
    "stripe": [
        {"since": "2000-01-01", "hold_days": 14, "incomplete_hours": 23, "renewal_leeway_minutes": 120},
        {"since": "2026-09-01", "hold_days": 0, "dunning_offsets_hours": []},
    ],
}


@pytest.fixture
def plans(db):
    """A plan of every kind of product, so the sweep has a move for each kind with its own grace."""
    return {kind: PlanFactory(product=ProductFactory(kind=kind)) for kind in Product.Kind.values}


def _lapse_in(since: datetime, until: datetime | None) -> datetime:
    lapse = since + timedelta(days=40, hours=7, minutes=13)
    assert until is None or lapse < until
    return lapse


def _row(source: str, lapse: datetime) -> dict:
    """Dates of a subscription in ``source`` that lapsed (or started, or ended its trial) at ``lapse``."""
    row = {
        "state": source,
        "started_at": lapse - timedelta(days=30),
        "current_period_start": lapse - timedelta(days=30),
        "current_period_end": lapse,
    }
    if source == S.PENDING:
        row["started_at"] = lapse
    if source == S.TRIALING:
        row["trial_end"] = lapse
    if source in (S.IN_GRACE_PERIOD, S.ON_HOLD):
        row["billing_issue_at"] = lapse
        row["grace_end"] = lapse + timedelta(days=5)
    if source == S.ON_HOLD:
        row["hold_end"] = lapse + timedelta(days=9)
    return row


def _fields(sub: Subscription) -> dict:
    return {f: getattr(sub, f) for f in COMPARED}


def _check(plans, moves, deadline, provider, lapse, kind, exercised: set) -> list[str]:
    """Build one due subscription; the sweep's move and the model's must agree. Returns disagreements."""
    case = f"{deadline.name} {provider} lapse={lapse:%Y-%m-%d} kind={kind}"
    auto_renew = True if deadline.auto_renew is None else deadline.auto_renew
    sub = SubscriptionFactory(
        plan=plans[kind],
        provider=provider,
        platform=PLATFORM[provider],
        auto_renew=auto_renew,
        **_row(deadline.source, lapse),
    )
    model = Subscription.objects.get(pk=sub.pk)
    terms = model.terms() if deadline.by_terms else None
    effective = deadline.effective(terms)
    if effective is None:
        # No such deadline under these terms: the sweep must leave the row alone, however late.
        moved = lifecycle_sweep(now=lapse + timedelta(days=400)).moved
        return [f"{case}: the model has no deadline, the sweep moved it by {moved}"] if moved else []
    due_at = effective.of(model, effective=lapse) + deadline.leeway(terms)

    problems = []
    with clock.frozen(due_at - timedelta(seconds=1)):
        early = lifecycle_sweep().moved
        if early or model.clock_move(clock.now()) is not None:
            problems.append(f"{case}: moved a second early (sweep {early})")
    with clock.frozen(due_at):
        expected = model.clock_move(clock.now())
        result = lifecycle_sweep()
    if expected is None:
        return [*problems, f"{case}: the model makes no move at {due_at}, the sweep made {result.moved}"]
    _, step, at = expected
    method = getattr(model, step.transition)
    assert can_proceed(method), case  # conditions included
    method(at=at)
    swept = Subscription.objects.get(pk=sub.pk)
    if len(result.moved) != 1:
        return [*problems, f"{case}: the model takes {step.transition}, the sweep made {result.moved}"]
    (name,) = result.moved
    exercised.add(name)
    move = moves[name]
    if move.transition != step.transition or move.target != model.state:
        problems.append(f"{case}: model {step.transition} -> {model.state}, sweep {move.transition} -> {move.target}")
    if _fields(swept) != _fields(model):
        problems.append(f"{case}: fields differ: model {_fields(model)}, sweep {_fields(swept)}")
    event = AuditEvent.objects.filter(object_id=str(sub.pk), actor_label=sweep_module.ACTOR_LABEL).get()
    if (event.action, event.reason) != (f"subscription.{step.transition}", step.reason(terms)):
        problems.append(f"{case}: audited as {event.action} ({event.reason})")
    return problems


def sweep_and_model_disagreements(plans) -> tuple[list[str], set[str]]:
    problems: list[str] = []
    exercised: set[str] = set()
    moves = {m.name: m for m in sweep_moves()}
    for deadline in Subscription.DEADLINES:
        for provider, versions in all_rules().items():
            # A deadline that does not depend on the terms: one rule version per provider is enough.
            for i, rule in enumerate(versions if deadline.by_terms else versions[:1]):
                until = versions[i + 1].since if i + 1 < len(versions) else None
                for kind in Product.Kind.values:
                    lapse = _lapse_in(rule.since, until)
                    with transaction.atomic():
                        problems += _check(plans, moves, deadline, provider, lapse, kind, exercised)
                        transaction.set_rollback(True)
    return problems, exercised


@pytest.mark.parametrize(
    ("product_grace", "platform_rules"),
    [
        ({"organization": 14}, {}),
        ({"organization": 14, "creator": 3}, MORE_VERSIONS),
    ],
    ids=["defaults", "more-kinds-and-versions"],
)
def test_every_move_of_the_sweep_is_the_models_own(plans, settings, product_grace, platform_rules):
    settings.SUBSCRIPTION_PRODUCT_GRACE_DAYS = product_grace
    settings.SUBSCRIPTION_PLATFORM_RULES = platform_rules
    problems, exercised = sweep_and_model_disagreements(plans)
    assert problems == []
    assert {m.name for m in sweep_moves()} <= exercised, "a move of the sweep selected no row built for it"


def test_the_check_fails_when_the_sweep_ignores_a_products_own_grace(plans, settings, monkeypatch):
    settings.SUBSCRIPTION_PRODUCT_GRACE_DAYS = {"organization": 14}
    # A sweep that knows only the platforms' rules (one class of products, no grace of their own).
    monkeypatch.setattr(sweep_module, "_product_classes", lambda: [(0, (), ())])
    problems, _ = sweep_and_model_disagreements(plans)
    assert problems
    assert all("kind=organization" in p for p in problems)
    assert any("active stripe" in p and "enter_grace_period" in p for p in problems)


def test_the_sweep_tells_the_state_hooks_once_per_chunk(plans):
    lapse = datetime(2027, 1, 31, tzinfo=UTC)
    subs = [
        SubscriptionFactory(plan=plans["consumer"], state=S.CANCELED, current_period_end=lapse, auto_renew=False)
        for _ in range(5)
    ]
    heard: list[StateMoves] = []
    state_hooks.register("test.sweep", heard.append)
    try:
        lifecycle_sweep(now=lapse, chunk_size=3)
    finally:
        state_hooks.unregister("test.sweep")
    assert [(m.source, m.target, m.transition, m.cause.label) for m in heard] == [
        (S.CANCELED, S.EXPIRED, "expire", "task:lifecycle_sweep")
    ] * 2
    assert sorted(i for m in heard for i in m.subscription_ids) == sorted(s.pk for s in subs)
    assert [len(m.subscription_ids) for m in heard] == [3, 2]


# --- the provider path search ------------------------------------------------------------------


def _transition_names() -> list[str]:
    field = Subscription._meta.get_field("state")
    return sorted({t.name for t in field.get_all_transitions(Subscription) if t.target not in (None, t.source)})


def _shortest_legal(sub: Subscription, target: str, max_steps: int = 3) -> int | None:
    """Brute force, independent of the search: the fewest transitions (conditions included) to ``target``."""
    frontier = [sub]
    for length in range(1, max_steps + 1):
        nxt = []
        for current in frontier:
            for name in _transition_names():
                probe = copy.copy(current)
                if can_proceed(getattr(probe, name)):
                    getattr(probe, name)()
                    if probe.state == target:
                        return length
                    nxt.append(probe)
        frontier = nxt
    return None


@pytest.mark.parametrize("provider", ["app_store", "google_play", "stripe"])
def test_every_path_the_provider_sync_takes_is_a_chain_of_legal_transitions(plans, provider):
    now = datetime(2027, 3, 10, tzinfo=UTC)
    with clock.frozen(now):
        for kind in ("consumer", "organization"):
            for source in S.values:
                base = SubscriptionFactory(
                    plan=plans[kind], provider=provider, platform=PLATFORM[provider], **_row(source, now)
                )
                for target in S.values:
                    sub = copy.copy(base)
                    path = transition_path(sub, target)
                    case = f"{provider} {kind} {source} -> {target}: {path}"
                    if source == target:
                        assert path == [], case
                        continue
                    expected = _shortest_legal(base, target)
                    if expected is None:
                        assert path == [], case
                        continue
                    assert len(path) == expected, case
                    for name in path:  # each step checked as the sync checks it: source, conditions
                        subscription_change_in_memory(sub, transition=name, cause=Cause.task("path"))
                    assert sub.state == target, case


def test_the_path_search_prefers_a_paid_period_and_the_specific_transition(plans):
    sub = SubscriptionFactory(plan=plans["consumer"], provider="google_play", platform="android", state=S.PAUSED)
    assert transition_path(sub, S.ACTIVE) == ["resume"]
    sub = SubscriptionFactory(plan=plans["consumer"], provider="google_play", platform="android", state=S.PENDING)
    assert transition_path(sub, S.IN_GRACE_PERIOD) == ["activate", "enter_grace_period"]
    # Stripe grants no grace of its own; an organization's product does.
    web = {"provider": "stripe", "platform": "web", "state": S.ACTIVE}
    assert transition_path(SubscriptionFactory(plan=plans["consumer"], **web), S.IN_GRACE_PERIOD) == []
    assert transition_path(SubscriptionFactory(plan=plans["organization"], **web), S.IN_GRACE_PERIOD) == [
        "enter_grace_period"
    ]
    # The App Store has no pause.
    ios = {"provider": "app_store", "platform": "ios", "state": S.ACTIVE}
    assert transition_path(SubscriptionFactory(plan=plans["consumer"], **ios), S.PAUSED) == []

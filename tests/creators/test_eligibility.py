import datetime

import pytest
from django.test import override_settings

from creators.models import CreatorAccount, EligibilityDecision
from creators.services.accounts import creator_apply, creator_transition, payout_profile_update
from creators.services.eligibility import add_months, eligibility_evaluate, evaluate
from creators.tasks import eligibility_reevaluate_all
from monetization import clock
from monetization.errors import IllegalTransition, InvalidInput, PermissionDenied
from monetization.services.permissions import System
from tests.monetization.factories import CustomerFactory
from tests.subscriptions.factories import EntitlementFactory, PlanFactory, ProductFactory, SubscriptionFactory

from .factories import engagement, staff

RULES = System("eligibility re-evaluation")

NOW = datetime.datetime(2026, 11, 20, 12, 0, tzinfo=datetime.UTC)
BASE = {
    "entitlement_keys": {"verified_badge"},
    "impressions": 5_000_000,
    "verified_followers": 500,
    "account_created_at": add_months(NOW, -3),
    "at": NOW,
}


def test_all_rules_at_their_thresholds_pass():
    eligible, reasons = evaluate(**BASE)
    assert eligible
    assert set(reasons) == {"premium", "impressions", "verified_followers", "account_age"}
    assert reasons["impressions"] == {"passed": True, "measured": 5_000_000, "threshold": 5_000_000, "window_months": 3}


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("impressions", 4_999_999, "impressions"),
        ("verified_followers", 499, "verified_followers"),
        ("account_created_at", add_months(NOW, -3) + datetime.timedelta(seconds=1), "account_age"),
        ("entitlement_keys", {"premium_basic_feature"}, "premium"),
        ("entitlement_keys", set(), "premium"),
    ],
)
def test_each_rule_just_below_its_threshold_fails_alone(field, value, rule):
    eligible, reasons = evaluate(**{**BASE, field: value})
    assert not eligible
    assert [name for name, r in reasons.items() if not r["passed"]] == [rule]


@pytest.mark.parametrize("key", ["verified_badge", "org_gold_badge", "affiliate_badge"])
def test_premium_or_verified_org_entitlements_count(key):
    assert evaluate(**{**BASE, "entitlement_keys": {key}})[0]


def test_rules_are_configurable():
    config = {
        "premium_entitlements": ["x"],
        "min_impressions": 10,
        "impressions_months": 1,
        "min_verified_followers": 1,
        "min_account_age_months": 0,
    }
    eligible, _ = evaluate(
        entitlement_keys={"x"}, impressions=10, verified_followers=1, account_created_at=NOW, at=NOW, config=config
    )
    assert eligible


def _premium_customer():
    ent = EntitlementFactory(key="verified_badge")
    product = ProductFactory(entitlements=[ent])
    customer = CustomerFactory(created_at=NOW - datetime.timedelta(days=400))
    with clock.frozen(NOW):
        SubscriptionFactory(customer=customer, plan=PlanFactory(product=product))
    return customer


@pytest.mark.django_db
def test_evaluation_reads_entitlements_engagement_and_stats_and_records_reasons():
    customer = _premium_customer()
    with clock.frozen(NOW):
        creator = creator_apply(customer=customer, verified_followers=500)
        # Window is [Aug 20, Nov 20): a day before it does not count, the first day does.
        engagement(creator, datetime.date(2026, 8, 19), impressions=10_000_000)
        engagement(creator, datetime.date(2026, 8, 20), impressions=4_000_000)
        engagement(creator, datetime.date(2026, 11, 19), impressions=999_999, source="other")
        decision = eligibility_evaluate(creator_id=creator.pk)
        assert not decision.eligible
        assert decision.reasons["impressions"]["measured"] == 4_999_999
        creator.refresh_from_db()
        assert creator.state == CreatorAccount.State.INELIGIBLE
        engagement(creator, datetime.date(2026, 10, 1), impressions=1)
        decision = eligibility_evaluate(creator_id=creator.pk)
    assert decision.eligible
    creator.refresh_from_db()
    assert creator.state == CreatorAccount.State.ELIGIBLE
    assert EligibilityDecision.objects.filter(creator=creator).count() == 2


@pytest.mark.django_db
def test_scheduled_reevaluation_records_a_decision_for_everyone_in_chunks():
    customers = [CustomerFactory(created_at=NOW - datetime.timedelta(days=400)) for _ in range(5)]
    with clock.frozen(NOW):
        creators = [creator_apply(customer=c, verified_followers=10) for c in customers]
        assert eligibility_reevaluate_all(chunk_size=2) == 5
    assert EligibilityDecision.objects.filter(creator__in=creators, eligible=False).count() == 5
    decision = EligibilityDecision.objects.filter(creator=creators[0]).first()
    assert decision.reasons["verified_followers"] == {"passed": False, "measured": 10, "threshold": 500}


def test_beat_schedule_has_the_reevaluation():
    from django.conf import settings

    assert settings.CELERY_BEAT_SCHEDULE["creators-eligibility"]["task"] == "creators.tasks.eligibility_reevaluate_all"


@pytest.mark.django_db
def test_lifecycle_onboarding_needs_payout_account_and_tax_form():
    customer = CustomerFactory()
    creator = creator_apply(customer=customer)
    creator_transition(creator_id=creator.pk, transition="mark_eligible", reason="manual review", actor=RULES)
    creator_transition(creator_id=creator.pk, transition="start_onboarding")
    with pytest.raises(IllegalTransition):
        creator_transition(creator_id=creator.pk, transition="activate")
    payout_profile_update(creator_id=creator.pk, payout_account_id="acct_123")
    creator.refresh_from_db()
    assert creator.state == CreatorAccount.State.ONBOARDING
    payout_profile_update(creator_id=creator.pk, tax_form_status="submitted", tax_form_type="w9")
    creator.refresh_from_db()
    assert creator.state == CreatorAccount.State.ACTIVE
    from monetization.models import AuditEvent

    events = AuditEvent.objects.filter(object_type="creators.creatoraccount", object_id=str(creator.pk))
    assert set(
        events.filter(action__in=["creator.mark_eligible", "creator.activate"]).values_list(
            "action", "actor_kind", "actor_label", "actor"
        )
    ) == {
        ("creator.mark_eligible", "system", "eligibility re-evaluation", None),
        ("creator.activate", "system", "onboarding complete", None),
    }


@pytest.mark.django_db
def test_compliance_suspends_reinstates_and_bans_with_reason_support_cannot():
    creator = creator_apply(customer=CustomerFactory())
    with pytest.raises(PermissionDenied):  # a cause must be named: no actor is no licence
        creator_transition(creator_id=creator.pk, transition="mark_eligible", reason="ok")
    creator_transition(creator_id=creator.pk, transition="mark_eligible", reason="ok", actor=RULES)
    creator_transition(creator_id=creator.pk, transition="start_onboarding")
    payout_profile_update(creator_id=creator.pk, payout_account_id="acct_1", tax_form_status="verified")
    compliance = staff("carol", "Compliance")
    support = staff("sam", "Support")
    with pytest.raises(PermissionDenied):
        creator_transition(creator_id=creator.pk, transition="suspend", actor=support, reason="x")
    with pytest.raises(InvalidInput):
        creator_transition(creator_id=creator.pk, transition="suspend", actor=compliance, reason=" ")
    creator_transition(creator_id=creator.pk, transition="suspend", actor=compliance, reason="spam report")
    creator_transition(creator_id=creator.pk, transition="reinstate", actor=compliance, reason="cleared")
    creator_transition(creator_id=creator.pk, transition="ban", actor=compliance, reason="fraud confirmed")
    creator.refresh_from_db()
    assert creator.state == CreatorAccount.State.BANNED
    with pytest.raises(IllegalTransition):
        creator_transition(creator_id=creator.pk, transition="reinstate", actor=compliance, reason="no")
    from monetization.models import AuditEvent

    assert list(
        AuditEvent.objects.filter(object_type="creators.creatoraccount", object_id=str(creator.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )[-3:] == ["creator.suspend", "creator.reinstate", "creator.ban"]


@override_settings(CREATOR_ELIGIBILITY={"min_verified_followers": 5})
def test_settings_override_merges_with_defaults():
    from creators.services.eligibility import rules

    assert rules()["min_verified_followers"] == 5
    assert rules()["min_impressions"] == 5_000_000

"""Two-platform detection: the daily job finds customers paying on two platforms at once for the same
entitlements, Support's queue shows the suggested fix, and cases close with a reason (audited)."""

import datetime

import pytest
from django.conf import settings as django_settings

from monetization import clock
from monetization.models import AuditEvent
from subscriptions.models import OverlapCase, Platform, Subscription
from subscriptions.tasks import overlaps_detect_task
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401
from tests.subscriptions.factories import (
    EntitlementFactory,
    PlanFactory,
    ProductFactory,
    SkuFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db

T0 = datetime.datetime(2026, 11, 1, 4, 20, tzinfo=datetime.UTC)
WEB = {"provider": "stripe", "platform": Platform.WEB}
IOS = {"provider": "app_store", "platform": Platform.IOS}
ANDROID = {"provider": "google_play", "platform": Platform.ANDROID}


def run(at: datetime.datetime) -> dict:
    with clock.frozen(at):
        return overlaps_detect_task.apply().get()


@pytest.fixture
def plans():
    premium, other = EntitlementFactory(key="premium"), EntitlementFactory(key="music")
    return {
        "premium": PlanFactory(product=ProductFactory(entitlements=[premium])),
        "premium_yearly": PlanFactory(product=ProductFactory(entitlements=[premium])),
        "music": PlanFactory(product=ProductFactory(entitlements=[other])),
    }


def sub(customer, plan, started_days_ago: int, **kw) -> Subscription:
    with clock.frozen(T0):
        return SubscriptionFactory(
            customer=customer, plan=plan, started_at=T0 - datetime.timedelta(days=started_days_ago), **kw
        )


def test_the_daily_job_finds_overlaps_and_suggests_the_fix(plans, settings):
    settings.GOOGLE_PLAY_PACKAGE_NAME = "com.example.app"
    web_and_store = CustomerFactory()
    apple = sub(web_and_store, plans["premium"], 200, **IOS)
    web = sub(web_and_store, plans["premium_yearly"], 10, **WEB)
    two_stores = CustomerFactory()
    sub(two_stores, plans["premium"], 90, **IOS)
    play_sku = SkuFactory(plan=plans["premium"], platform=Platform.ANDROID, store_product_id="premium_monthly")
    play = sub(two_stores, plans["premium"], 3, sku=play_sku, **ANDROID)
    # Not paying twice: one platform twice, different entitlements, a cancelled one, one on hold.
    same_platform = CustomerFactory()
    sub(same_platform, plans["premium"], 30, **WEB)
    sub(same_platform, plans["premium_yearly"], 5, **WEB)
    different = CustomerFactory()
    sub(different, plans["premium"], 30, **IOS)
    sub(different, plans["music"], 5, **WEB)
    cancelled = CustomerFactory()
    sub(cancelled, plans["premium"], 30, **IOS)
    sub(cancelled, plans["premium"], 5, state=Subscription.State.CANCELED, auto_renew=False, **WEB)
    on_hold = CustomerFactory()
    sub(on_hold, plans["premium"], 30, **IOS)
    sub(on_hold, plans["premium"], 5, state=Subscription.State.ON_HOLD, **ANDROID)

    assert run(T0) == {"opened": 2, "still_found": 0, "closed": 0}

    cases = {c.customer_id: c for c in OverlapCase.objects.all()}
    assert set(cases) == {web_and_store.pk, two_stores.pk}
    first = cases[web_and_store.pk]
    assert (first.providers, first.entitlement_keys, first.subscription_ids) == (
        ["app_store", "stripe"],
        ["premium"],
        sorted([apple.pk, web.pk]),
    )
    assert (first.end_id, first.keep_id, first.fix, first.manage_url) == (web.pk, apple.pk, "cancel_web", "")
    second = cases[two_stores.pk]
    assert (second.end_id, second.fix) == (play.pk, "cancel_in_store")
    assert second.manage_url == (
        "https://play.google.com/store/account/subscriptions?sku=premium_monthly&package=com.example.app"
    )
    detected = AuditEvent.objects.filter(action="subscription.overlap_detected")
    assert {e.customer_id for e in detected} == {web_and_store.pk, two_stores.pk}
    assert {e.actor_kind for e in detected} == {"system"}


def test_a_new_run_refreshes_open_cases_and_closes_the_ones_gone(plans):
    customer = CustomerFactory()
    sub(customer, plans["premium"], 100, **IOS)
    web = sub(customer, plans["premium"], 1, **WEB)
    run(T0)
    assert run(T0 + datetime.timedelta(days=1)) == {"opened": 0, "still_found": 1, "closed": 0}
    case = OverlapCase.objects.get()
    assert case.last_seen_at == T0 + datetime.timedelta(days=1) and case.state == "open"

    Subscription.objects.filter(pk=web.pk).update(state=Subscription.State.CANCELED, auto_renew=False)
    assert run(T0 + datetime.timedelta(days=2)) == {"opened": 0, "still_found": 0, "closed": 1}
    case.refresh_from_db()
    assert case.state == "resolved" and "No longer paying twice" in case.decision_reason
    closed = AuditEvent.objects.get(action="subscription.overlap_resolve")
    assert (closed.customer_id, closed.actor_kind, closed.object_id) == (customer.pk, "system", str(case.pk))


def test_a_dismissed_case_is_not_raised_again(plans, make_staff):
    from subscriptions.services.overlaps import overlap_case_decide

    customer = CustomerFactory()
    sub(customer, plans["premium"], 100, **IOS)
    sub(customer, plans["premium"], 1, **WEB)
    run(T0)
    overlap_case_decide(
        case=OverlapCase.objects.get(), user=make_staff("Support"), decision="dismiss", reason="family account"
    )
    assert run(T0 + datetime.timedelta(days=1)) == {"opened": 0, "still_found": 1, "closed": 0}
    assert list(OverlapCase.objects.values_list("state", flat=True)) == ["dismissed"]


def test_support_closes_a_case_in_the_admin_with_a_reason(plans, make_staff, client):
    customer = CustomerFactory()
    sub(customer, plans["premium"], 100, **IOS)
    sub(customer, plans["premium"], 1, **WEB)
    run(T0)
    case = OverlapCase.objects.get()
    support = make_staff("Support")
    client.force_login(support)

    listing = client.get("/admin/subscriptions/overlapcase/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert customer.handle in html and "cancel and refund the overlap" in html

    page = f"/admin/subscriptions/overlapcase/{case.pk}/change/"
    assert 'name="decision"' in client.get(page).content.decode()
    refused = client.post(page, {"decision": "resolve", "reason": "  "})
    assert refused.status_code == 200  # the form again, with the error
    case.refresh_from_db()
    assert case.state == "open" and not AuditEvent.objects.filter(action="subscription.overlap_resolve").exists()

    assert (
        client.post(page, {"decision": "resolve", "reason": "web subscription cancelled and refunded"}).status_code
        == 302
    )
    case.refresh_from_db()
    assert (case.state, case.decided_by, case.decision_reason) == (
        "resolved",
        support,
        "web subscription cancelled and refunded",
    )
    event = AuditEvent.objects.get(action="subscription.overlap_resolve")
    assert (event.actor, event.customer_id, event.before, event.after["state"]) == (
        support,
        customer.pk,
        {"state": "open", "decision_reason": ""},
        "resolved",
    )


def test_finance_does_not_see_the_queue_and_a_closed_case_cannot_be_closed_again(plans, make_staff, client):
    from monetization.errors import IllegalTransition, PermissionDenied
    from subscriptions.services.overlaps import overlap_case_decide

    customer = CustomerFactory()
    sub(customer, plans["premium"], 100, **IOS)
    sub(customer, plans["premium"], 1, **WEB)
    run(T0)
    case = OverlapCase.objects.get()
    finance = make_staff("Finance")
    client.force_login(finance)
    assert client.get("/admin/subscriptions/overlapcase/").status_code == 403
    with pytest.raises(PermissionDenied):
        overlap_case_decide(case=case, user=finance, decision="dismiss", reason="x")
    support = make_staff("Support")
    overlap_case_decide(case=case, user=support, decision="dismiss", reason="same person, two devices")
    with pytest.raises(IllegalTransition):
        overlap_case_decide(case=case, user=support, decision="resolve", reason="again")


def test_the_job_is_on_the_beat_schedule():
    from backoffice.celery import app

    entry = django_settings.CELERY_BEAT_SCHEDULE["subscriptions-overlaps-detect"]
    assert entry["task"] == overlaps_detect_task.name
    app.loader.import_default_modules()
    assert entry["task"] in app.tasks

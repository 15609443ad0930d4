"""Support, Finance and Compliance at work in a real browser, over the demo's data.

Each journey is what the role does in a day, through the pages only: the database is read to pick the
demo's records to work on and to check what the pages claim happened.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from creators.models import Payout, PayoutHold, RevenueShareCycle
from monetization import clock
from monetization.models import AuditEvent, Payment, ProviderIdentity, Refund
from subscriptions.models import Entitlement, Grant, Subscription
from tests.verified_orgs.factories import applied_org

pytestmark = pytest.mark.e2e


def _stripe_customer_with_payment():
    """A demo customer with a Stripe id, a live web subscription and a succeeded payment of a few units."""
    for sub in Subscription.objects.filter(provider="stripe", state="active", auto_renew=True).order_by("id"):
        payment = (
            Payment.objects.filter(customer=sub.customer, provider="stripe", status=Payment.Status.SUCCEEDED)
            .order_by("-amount")
            .first()
        )
        identity = ProviderIdentity.objects.filter(customer=sub.customer, provider="stripe").first()
        if payment and identity and payment.amount.amount >= 4 and not sub.customer.refunds.exists():
            return sub, payment, identity
    raise AssertionError("the demo has no active Stripe subscriber with a payment")


def _part(amount: Decimal, fraction: str) -> Decimal:
    return (amount * Decimal(fraction)).quantize(Decimal("0.01"), rounding=ROUND_DOWN)


def _refund_on_page(page, amount: Decimal, note: str) -> None:
    form = page.locator("#refund-form form")
    form.locator("input[name=amount]").fill(str(amount))
    form.locator("textarea[name=note]").fill(note)
    form.get_by_role("button", name="Request refund").click()


def test_support_refunds_grants_and_cancels_and_finance_approves(console, settings):
    sub, payment, identity = _stripe_customer_with_payment()
    amount, currency = payment.amount.amount, str(payment.amount.currency)
    threshold = _part(amount, "0.4")
    settings.REFUND_APPROVAL_THRESHOLDS = {**settings.REFUND_APPROVAL_THRESHOLDS, currency: str(threshold)}
    support = console("support")

    # Find the customer by their Stripe customer id from the front page.
    page = support.go("/admin/")
    page.get_by_label("Find a customer").fill(identity.value)
    page.get_by_role("button", name="Go").click()
    expect(page.locator("#identity h2")).to_contain_text(f"@{sub.customer.handle}")
    support.check()

    # A refund below the threshold goes through at once.
    page.locator("#refund-form select[name=payment]").select_option(str(payment.pk))
    _refund_on_page(page, _part(amount, "0.25"), "e2e: double charge, small part back")
    expect(page.locator("ul.messagelist")).to_contain_text("requested")
    small = Refund.objects.get(payment=payment, note__startswith="e2e: double charge")
    assert small.status == Refund.Status.SUCCEEDED
    expect(page.locator("#refunds")).to_contain_text("Succeeded")

    # One above it waits for a second person.
    page.locator("#refund-form select[name=payment]").select_option(str(payment.pk))
    _refund_on_page(page, _part(amount, "0.5"), "e2e: goodwill, above the threshold")
    expect(page.locator("ul.messagelist")).to_contain_text("second person")
    large = Refund.objects.get(payment=payment, note__startswith="e2e: goodwill")
    assert large.status == Refund.Status.PENDING_APPROVAL

    # Support cannot approve its own request.
    page = support.go("/admin/monetization/refund/awaiting-approval/")
    row = page.locator("tr", has_text=large.note[:30])
    expect(row).to_contain_text("your own request")
    expect(row.get_by_role("button", name="Approve")).to_have_count(0)

    # Grant seven days of an entitlement, then cancel the subscription at period end.
    entitlement = Entitlement.objects.order_by("key").first()
    page = support.go(f"/admin/monetization/customer/{sub.customer_id}/support/")
    grant_form = page.locator("#grant-form form")
    grant_form.locator("select[name=entitlement]").select_option(entitlement.key)
    grant_form.locator("[name=days]").fill("7")
    grant_form.locator("[name=reason]").fill("e2e: outage compensation")
    grant_form.get_by_role("button", name="Grant").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Access granted")
    grant = Grant.objects.get(customer=sub.customer, reason="e2e: outage compensation")
    assert grant.entitlement == entitlement and grant.ends_at is not None

    row = page.locator("#subscriptions tr", has=page.locator(f"input[name=target][value='{sub.pk}']"))
    row.locator("select[name=op]").select_option("cancel")
    row.locator("input[name=reason]").fill("e2e: customer asked to stop renewing")
    row.get_by_role("button", name="Apply").click()
    expect(page.locator("ul.messagelist")).to_contain_text("cancel done")
    sub.refresh_from_db()
    assert sub.auto_renew is False

    # Finance approves the large refund from its queue.
    finance = console("finance")
    page = finance.go("/admin/monetization/refund/awaiting-approval/")
    row = page.locator("tr", has_text=large.note[:30])
    row.locator("input[name=reason]").fill("e2e: checked the ticket")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Refund approved")
    large.refresh_from_db()
    assert large.status == Refund.Status.SUCCEEDED and large.approved_by.username == "finance"


def test_finance_reviews_approves_pays_and_exports_a_cycle_while_compliance_holds_a_payout(console):
    cycle = RevenueShareCycle.objects.get(state=RevenueShareCycle.State.IN_REVIEW)
    finance = console("finance")
    page = finance.go(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/")
    expect(page.locator("#cycle-review h2")).to_contain_text(cycle.period.strftime("%Y-%m"))

    review = page.locator("#cycle-review")
    review.locator("form", has=page.locator("input[name=op][value=approve]")).locator("input[type=submit]").click()
    confirm = page.locator("#cycle-confirm")  # its own page: what approving pays, a reason, a ticked box
    expect(confirm).to_contain_text("payable to")
    confirm.locator("textarea[name=reason]").fill("e2e: totals match the pool")
    confirm.locator("input[name=confirm_action]").check()
    confirm.locator("input[type=submit]").click()
    expect(page.locator("ul.messagelist")).to_contain_text("approved")
    cycle.refresh_from_db()
    assert cycle.state == RevenueShareCycle.State.APPROVED

    # Compliance holds one payout and lifts it again from the payout's page.
    payout = Payout.objects.filter(cycle=cycle).order_by("id").first()
    compliance = console("compliance")
    page = compliance.go(f"/admin/creators/payout/{payout.pk}/change/")
    place = page.locator("form", has=page.locator("input[name=op][value=place]"))
    place.locator("input[name=reason]").fill("e2e: identity documents expired")
    place.get_by_role("button", name="Place hold").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Hold placed")
    hold = PayoutHold.objects.get(payout=payout, lifted_at__isnull=True)
    lift = page.locator("form", has=page.locator("input[name=op][value=lift]"))
    lift.locator("input[name=reason]").fill("e2e: documents renewed")
    lift.get_by_role("button", name="Lift").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Hold lifted")
    hold.refresh_from_db()
    assert hold.lifted_at is not None

    # Finance pays the cycle (tasks run inline here), exports the payouts and closes it.
    page = finance.go(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/")
    page.locator("#cycle-review form", has=page.locator("input[name=op][value=start_paying]")).locator(
        "input[type=submit]"
    ).click()
    expect(page.locator("ul.messagelist")).to_contain_text("Paying run queued")
    cycle.refresh_from_db()
    assert cycle.state in (RevenueShareCycle.State.PAID, RevenueShareCycle.State.PAYING)

    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Export payouts")).click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert len(rows) == 1 + Payout.objects.filter(cycle=cycle).count()

    page.reload()
    page.locator("#cycle-review form", has=page.locator("input[name=op][value=close]")).locator(
        "input[type=submit]"
    ).click()
    close = page.locator("#cycle-confirm")
    close.locator("textarea[name=reason]").fill("e2e: every payout paid")
    close.locator("input[name=confirm_action]").check()
    close.locator("input[type=submit]").click()
    expect(page.locator("ul.messagelist")).to_contain_text("closed")
    cycle.refresh_from_db()
    assert cycle.state == RevenueShareCycle.State.CLOSED


def test_compliance_verifies_and_rejects_organizations_and_reads_the_audit_trail(console):
    to_verify = applied_org(name="E2E Verify Me", handle="e2everify")
    to_reject = applied_org(name="E2E Reject Me", handle="e2ereject")
    compliance = console("compliance")

    for org, steps in ((to_verify, ("start_review", "verify")), (to_reject, ("start_review", "reject"))):
        for step in steps:
            page = compliance.go(f"/admin/verified_orgs/organization/{org.pk}/change/")
            page.locator(f".object-tools a[href$='/{step}/']").click()
            compliance.check()
            reason = page.locator("[name=reason]")
            if reason.count():
                reason.fill(f"e2e: {step} after reading the documents")
            confirm = page.locator("[name=confirm]")
            if confirm.count():
                confirm.check()
            page.locator("#content form [type=submit]").first.click()
            expect(page.locator("ul.messagelist")).to_contain_text("done")
    to_verify.refresh_from_db()
    to_reject.refresh_from_db()
    assert (to_verify.state, to_reject.state) == ("verified", "rejected")

    # The audit trail answers "who did what to this organization".
    page = compliance.go("/admin/monetization/auditevent/")
    page.locator("#searchbar").fill(str(to_reject.pk))
    page.locator("#changelist-search [type=submit]").click()
    expect(page.locator("#result_list")).to_contain_text("reject")
    assert AuditEvent.objects.filter(action__contains="reject", actor__username="compliance").exists()


def test_finance_opens_the_dashboard_changes_the_range_and_exports(console):
    finance = console("finance")
    page = finance.go("/admin/subscriptions/subscription/finance/")
    expect(page.locator("h2#mrr")).to_be_visible()
    expect(page.locator("#snapshot-age")).to_contain_text("refreshed")  # the demo built the snapshots

    end = clock.now().date()
    start = end - datetime.timedelta(days=89)
    form = page.locator("#finance-range")
    form.locator("input[name=start]").fill(start.isoformat())
    form.locator("select[name=segment]").select_option("plan")
    form.get_by_role("button", name="Show").click()
    expect(page.locator("#content")).to_contain_text(f"{start.isoformat()} to {end.isoformat()}")
    expect(page.locator("#content")).to_contain_text("By plan")
    finance.check()

    with page.expect_download() as download:
        page.locator("#exports + ul li", has_text="Payments").locator("a.range-export-xlsx").click()
    sheet = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    in_range = Payment.objects.filter(occurred_at__date__gte=start, occurred_at__date__lte=end)
    assert len(rows) - 1 == in_range.count() > 0
    assert AuditEvent.objects.filter(action="export.xlsx", actor__username="finance").exists()

"""Support, Finance and Compliance at work in a real browser, over the demo's data.

Each journey is what the role does in a day, through the pages only: the database is read to pick the
demo's records to work on and to check what the pages claim happened.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import re
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from creators.models import Payout, PayoutHold, RevenueShareCycle
from monetization import clock
from monetization.models import (
    AuditEvent,
    Customer,
    CustomerMerge,
    ErasureRequest,
    Payment,
    ProviderIdentity,
    Refund,
)
from subscriptions.entitlements import resolve_entitlements
from subscriptions.models import Entitlement, Grant, Subscription
from tests.verified_orgs.factories import applied_org
from verified_orgs.models import Affiliation

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


# --- transfers, merges, personal data -----------------------------------------------------------------


def _consumers():
    """Demo customers with an e-mail, no creator account and no organization to pay for, not in the erasure queue."""
    return (
        Customer.objects.exclude(email="")
        .filter(creator_account__isnull=True, billed_organizations__isnull=True)
        .exclude(pk__in=ErasureRequest.objects.values("customer_id"))
        .order_by("id")
    )


def _paid_subscription(customer_ids=None, *, provider="stripe"):
    """An active subscription of a consumer with its payments, all in one currency: (sub, payments)."""
    subs = Subscription.objects.filter(customer__in=_consumers(), provider=provider, state="active").order_by("id")
    if customer_ids is not None:
        subs = subs.filter(customer_id__in=customer_ids)
    for sub in subs:
        payments = list(Payment.objects.filter(subscription_link__subscription=sub, customer=sub.customer))
        if payments and len({str(p.amount.currency) for p in payments}) == 1:
            return sub, payments
    raise AssertionError(f"the demo has no active {provider} subscriber with payments")


def _column(page, section: str) -> set[int]:
    """The first column of a customer page section's table: the rows' ids."""
    cells = page.locator(f"#{section} tbody tr td:first-child").all_inner_texts()
    return {int(text) for text in map(str.strip, cells) if text.isdigit()}


def test_support_transfers_a_purchase_finance_approves_and_both_timelines_show_it(console, settings):
    sub, payments = _paid_subscription()
    owner = sub.customer
    # The new login: a customer with nothing active of their own.
    newcomer = _consumers().exclude(pk=owner.pk).exclude(subscriptions__state__in=["active", "trialing"]).first()
    currency = str(payments[0].amount.currency)
    total = sum(p.amount.amount for p in payments)
    # Just under what the purchase's payments add up to: the transfer waits for a second person.
    threshold = total - Decimal("0.01")
    settings.REFUND_APPROVAL_THRESHOLDS = {**settings.REFUND_APPROVAL_THRESHOLDS, currency: str(threshold)}
    keys = {e.key for e in resolve_entitlements(owner.pk) if e.source == "subscription" and e.source_id == str(sub.pk)}
    assert keys and not [e for e in resolve_entitlements(newcomer.pk) if e.source == "subscription"]

    # Support opens the owner's page and starts the transfer from it (the owner is filled in).
    support = console("support")
    page = support.go(f"/admin/monetization/customer/{owner.pk}/support/")
    page.get_by_role("link", name="transfer or merge…").click()
    support.check()
    form = page.locator("#customer-move")
    expect(form.locator("input[name=source]")).to_have_value(owner.external_id)
    form.locator("input[name=target]").fill(newcomer.external_id)
    form.locator("input[name=purchase]").fill(str(sub.pk))
    form.locator("textarea[name=reason]").fill("e2e: bought on the wrong login, ticket #7001")
    form.get_by_role("button", name="Preview").click()

    # The preview says what moves and that it needs a second person.
    preview = page.locator("#move-preview")
    expect(preview.locator("tr", has_text="subscriptions")).to_contain_text("1")
    expect(preview.locator("tr", has_text="payments")).to_contain_text(f"{len(payments)}")
    expect(preview.locator("tr", has_text="payments")).to_contain_text(currency)
    expect(preview).to_contain_text("Needs approval")
    assert Subscription.objects.get(pk=sub.pk).customer_id == owner.pk  # a preview moves nothing
    page.get_by_role("button", name="Request transfer").click()
    expect(page.locator("ul.messagelist")).to_contain_text("second person")
    merge = CustomerMerge.objects.get(source=owner, target=newcomer)
    assert merge.status == CustomerMerge.Status.PENDING_APPROVAL and merge.purchase_id == sub.pk
    assert Subscription.objects.get(pk=sub.pk).customer_id == owner.pk

    # Support cannot approve its own request; Finance approves it from the queue.
    page = support.go("/admin/monetization/customermerge/awaiting-approval/")
    row = page.locator("tr", has=page.locator(f"input[name=target][value='{merge.pk}']"))
    expect(page.locator("tr", has_text=f"subscription {sub.pk}")).to_contain_text("your own request")
    expect(row).to_have_count(0)
    finance = console("finance")
    page = finance.go("/admin/monetization/customermerge/awaiting-approval/")
    row = page.locator("tr", has=page.locator(f"input[name=target][value='{merge.pk}']"))
    row.locator("input[name=reason]").fill("e2e: the receipt is in the ticket")
    row.get_by_role("button", name="Approve").click()
    expect(page.locator("ul.messagelist")).to_contain_text(f"Approved: request {merge.pk} done")

    # The purchase, its money and its entitlements are the newcomer's now.
    merge.refresh_from_db()
    assert merge.status == CustomerMerge.Status.COMPLETED and merge.approved_by.username == "finance"
    assert Subscription.objects.get(pk=sub.pk).customer_id == newcomer.pk
    assert Payment.objects.filter(pk__in=[p.pk for p in payments], customer=newcomer).count() == len(payments)
    assert keys <= {e.key for e in resolve_entitlements(newcomer.pk) if e.source_id == str(sub.pk)}
    assert not [e for e in resolve_entitlements(owner.pk) if e.source_id == str(sub.pk)]

    # Both timelines show the transfer; the newcomer's page lists the purchase, its payments and entitlements.
    for customer in (owner, newcomer):
        page = support.go(f"/admin/monetization/customer/{customer.pk}/support/")
        timeline = page.locator("#timeline")
        requested = timeline.locator("tr", has_text="customer_transfer.request")
        expect(requested).to_contain_text("support")
        expect(requested).to_contain_text("bought on the wrong login")
        approved = timeline.locator("tr", has_text="customer_transfer.approve")
        expect(approved).to_contain_text("finance")
        expect(approved).to_contain_text("pending_approval → completed")
        expect(timeline.locator("tr", has_text="subscription.transfer")).to_contain_text(
            f"owner {owner.external_id} → {newcomer.external_id}"
        )
        expect(timeline.locator("tr", has_text="customer.transfer")).to_contain_text(
            f"subscription {sub.pk} moved from {owner.external_id} to {newcomer.external_id}"
        )
        expect(timeline).not_to_contain_text("merged into")
    assert sub.pk in _column(page, "subscriptions")
    assert {p.pk for p in payments} <= _column(page, "payments")
    for key in keys:
        expect(page.locator("#entitlements tr", has_text=key)).to_contain_text(f"subscription #{sub.pk}")
    page = support.go(f"/admin/monetization/customer/{owner.pk}/support/")
    assert sub.pk not in _column(page, "subscriptions")


def test_support_merges_two_accounts_of_one_person_and_the_survivor_holds_both_histories(console, settings):
    # Most demo customers hold an organization seat, and two seats cannot become one: the merged-away
    # account is one without a seat.
    unseated = _consumers().exclude(affiliations__state__in=Affiliation.LIVE_STATES).values("pk")
    first, _ = _paid_subscription(unseated, provider="app_store")
    second, _ = _paid_subscription(_consumers().exclude(pk=first.customer_id).values("pk"))
    merged_away, survivor = first.customer, second.customer
    histories = {
        "payments": set(Payment.objects.filter(customer__in=[merged_away, survivor]).values_list("pk", flat=True)),
        "subscriptions": set(
            Subscription.objects.filter(customer__in=[merged_away, survivor]).values_list("pk", flat=True)
        ),
    }
    assert len(histories["payments"]) <= 50  # the page lists them all
    currencies = set(Payment.objects.filter(customer=merged_away).values_list("amount_currency", flat=True))
    # Thresholds above anything a demo customer paid: the merge goes through at once.
    settings.REFUND_APPROVAL_THRESHOLDS = {**settings.REFUND_APPROVAL_THRESHOLDS, **dict.fromkeys(currencies, "100000")}

    support = console("support")
    page = support.go("/admin/monetization/customermerge/")
    page.get_by_role("link", name="Transfer or merge…").click()
    form = page.locator("#customer-move")
    form.locator("input[name=source]").fill(merged_away.external_id)
    form.locator("input[name=target]").fill(survivor.external_id)
    form.locator("textarea[name=reason]").fill("e2e: one person, an iPhone login and a web login")
    form.get_by_role("button", name="Preview").click()
    preview = page.locator("#move-preview")
    expect(preview).to_contain_text("Goes through at once")
    expect(preview.locator("tr", has_text="identities")).to_be_visible()
    page.get_by_role("button", name="Request merge").click()
    expect(page.locator("ul.messagelist")).to_contain_text(f"moved to {survivor.external_id}")
    support.check()

    # The survivor's page (where Support lands) lists both people's subscriptions and payments.
    expect(page.locator("#identity h2")).to_contain_text(f"@{survivor.handle}")
    assert histories["subscriptions"] <= _column(page, "subscriptions")
    assert histories["payments"] <= _column(page, "payments")
    expect(page.locator("#timeline tr", has_text="customer.merge")).to_contain_text(
        f"{merged_away.external_id} merged into {survivor.external_id}"
    )
    page = support.go(f"/admin/monetization/customer/{merged_away.pk}/support/")
    expect(page.locator("#timeline tr", has_text="customer.merge")).to_contain_text(
        f"merged into {survivor.external_id}"
    )
    expect(page.locator("#subscriptions")).to_contain_text("No subscriptions.")

    assert set(Payment.objects.filter(customer=survivor).values_list("pk", flat=True)) == histories["payments"]
    assert (
        set(Subscription.objects.filter(customer=survivor).values_list("pk", flat=True)) == (histories["subscriptions"])
    )
    assert CustomerMerge.objects.get(source=merged_away, target=survivor).status == CustomerMerge.Status.COMPLETED
    assert {e.source_id for e in resolve_entitlements(survivor.pk)} >= {str(first.pk), str(second.pk)}


def test_compliance_exports_and_erases_a_customer_that_support_asked_for(console):
    sub, payments = _paid_subscription()
    customer = sub.customer
    email, handle = customer.email, customer.handle
    assert email and payments

    # Compliance finds the customer by e-mail and downloads everything held on them.
    compliance = console("compliance")
    page = compliance.go("/admin/")
    page.get_by_label("Find a customer").fill(email)
    page.get_by_role("button", name="Go").click()
    expect(page.locator("#identity h2")).to_contain_text(f"@{handle}")
    compliance.check()
    with page.expect_download() as download:
        page.get_by_role("link", name="export personal data").click()
    document = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert (document["customer"]["email"], document["customer"]["handle"]) == (email, handle)
    exported = {row["provider_reference"] for row in document["sources"]["monetization.Payment"]}
    assert exported == set(Payment.objects.filter(customer=customer).values_list("provider_reference", flat=True))
    assert {p.provider_reference for p in payments} <= exported
    assert AuditEvent.objects.filter(action="privacy.export", actor__username="compliance", customer=customer).exists()

    # Support logs the person's erasure request from the customer page, and cannot execute it.
    support = console("support")
    page = support.go(f"/admin/monetization/customer/{customer.pk}/support/")
    expect(page.get_by_role("link", name="export personal data")).to_have_count(0)
    page.get_by_role("link", name="log an erasure request…").click()
    support.check()
    page.locator("textarea[name=reason]").fill("e2e: e-mail to privacy@, ticket #7002")
    page.locator("input[name=_save]").click()
    expect(page.locator("ul.messagelist")).to_contain_text("added successfully")
    erasure = ErasureRequest.objects.get(customer=customer)
    assert erasure.state == ErasureRequest.State.REQUESTED and erasure.requested_by.username == "support"
    page = support.go(f"/admin/monetization/erasurerequest/{erasure.pk}/change/")
    expect(page.locator("#erasure-actions")).to_have_count(0)
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    denied = page.request.post(
        f"{support.base_url}/admin/monetization/erasurerequest/{erasure.pk}/act/execute/",
        headers={"X-CSRFToken": csrf},
        max_redirects=0,
    )
    assert denied.status == 403
    erasure.refresh_from_db()
    assert erasure.state == ErasureRequest.State.REQUESTED

    # Compliance takes it from the queue: the export is there too; start, then execute.
    page = compliance.go("/admin/monetization/erasurerequest/")
    page.locator(f"#result_list a[href$='/erasurerequest/{erasure.pk}/change/']").click()
    compliance.check()
    expect(page.locator(".object-tools")).to_contain_text("Export personal data")
    page.get_by_role("button", name="Start (the person is verified)").click()
    expect(page.locator("ul.messagelist")).to_contain_text("start done")
    actions = page.locator("#erasure-actions")
    actions.get_by_label("Execution note").fill(f"e2e: identity checked against {email}")
    actions.get_by_role("button", name=re.compile("Execute erasure")).click()
    expect(page.locator("ul.messagelist")).to_contain_text("execute done")
    expect(page.locator("#content")).to_contain_text("pseudonymized_rows")
    erasure.refresh_from_db()
    assert erasure.state == ErasureRequest.State.DONE and erasure.decided_by.username == "compliance"

    # The customer page now shows the pseudonym, and neither the e-mail nor the handle anywhere.
    page = support.go(f"/admin/monetization/customer/{customer.pk}/support/")
    expect(page.locator("#identity h2")).to_contain_text(f"@erased-{customer.pk}")
    expect(page.locator("#identity")).to_contain_text("(no email)")
    content = page.content().lower()
    assert email.lower() not in content and f"@{handle.lower()}" not in content
    customer.refresh_from_db()
    assert (customer.email, customer.handle) == ("", f"erased-{customer.pk}")
    assert Subscription.objects.get(pk=sub.pk).auto_renew is False  # the web subscription stops renewing

    # The audit trail records who erased whom, without the e-mail.
    page = compliance.go("/admin/monetization/auditevent/")
    page.locator("#searchbar").fill(str(customer.pk))
    page.locator("#changelist-search [type=submit]").click()
    executed = page.locator("#result_list tr", has_text="privacy.erasure_execute")
    expect(executed).to_contain_text("compliance")
    expect(page.locator("#result_list")).to_contain_text("privacy.erasure_request")
    expect(page.locator("#result_list")).to_contain_text("privacy.export")
    assert email.lower() not in page.content().lower()
    assert AuditEvent.objects.filter(
        action="privacy.erasure_execute", actor__username="compliance", customer=customer
    ).exists()

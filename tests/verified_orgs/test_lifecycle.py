import pytest

from monetization.errors import IllegalTransition, PermissionDenied
from monetization.models import AuditEvent, Payment
from subscriptions.models import Subscription
from tests.verified_orgs.factories import applied_org, compliance_user, org_catalog, staff_user, verified_org
from verified_orgs.models import Organization, OrgInvoice, SeatLedgerEntry, VerificationApplication
from verified_orgs.services.organizations import (
    organization_cancel,
    organization_reapply,
    organization_reinstate,
    organization_reject,
    organization_start_review,
    organization_suspend,
    organization_verify,
)

pytestmark = pytest.mark.django_db


def test_apply_review_verify_creates_subscription_invoice_and_audit():
    reviewer = compliance_user()
    org_catalog()
    org = applied_org()
    assert org.state == Organization.State.APPLIED
    organization_start_review(organization=org, reviewer=reviewer, reason="picked up")
    org = organization_verify(organization=org, reviewer=reviewer, reason="ok")
    org.refresh_from_db()
    assert org.state == Organization.State.VERIFIED
    sub = org.subscription
    assert sub.state == Subscription.State.ACTIVE and sub.provider == "stripe" and sub.platform == "web"
    assert sub.plan.code == "verified-org-monthly" and sub.quantity == 0
    invoice = OrgInvoice.objects.get(organization=org)
    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [("base", 1000), ("seats", 0)]
    assert invoice.status == OrgInvoice.Status.OPEN and invoice.total == 1000
    assert not Payment.objects.filter(subscription_link__subscription=sub).exists()  # booked when Stripe collects
    assert SeatLedgerEntry.objects.get(organization=org).reason == "period_start"
    application = VerificationApplication.objects.get(organization=org)
    assert application.decision == "verified" and application.reviewer == reviewer
    actions = list(
        AuditEvent.objects.filter(object_type="verified_orgs.organization", object_id=str(org.pk))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["organization.apply", "organization.start_review", "organization.verify"]


def test_reject_needs_reason_and_reapply_goes_back_to_queue():
    reviewer = compliance_user()
    org = applied_org()
    with pytest.raises(Exception) as exc:
        organization_reject(organization=org, reviewer=reviewer, reason="  ")
    assert exc.value.code == "reason_required"
    org = organization_reject(organization=org, reviewer=reviewer, reason="documents unreadable")
    assert org.state == "rejected" and org.state_reason == "documents unreadable"
    org = organization_reapply(organization=org, documents=[{"label": "new", "url": "https://x/y.pdf"}])
    assert org.state == "applied"
    assert list(org.applications.order_by("id").values_list("decision", flat=True)) == ["rejected", "pending"]


@pytest.mark.parametrize("role", [None, "Support", "Finance"])
def test_only_compliance_may_verify_reject_suspend_reinstate(role):
    user = staff_user(f"u-{role}", role)
    org = applied_org()
    for call in (
        lambda: organization_start_review(organization=org, reviewer=user),
        lambda: organization_reject(organization=org, reviewer=user, reason="no"),
    ):
        with pytest.raises(PermissionDenied):
            call()
    org.refresh_from_db()
    assert org.state == "applied"
    verified = verified_org()
    with pytest.raises(PermissionDenied):
        organization_suspend(organization=verified, actor=user, reason="spam")
    verified.refresh_from_db()
    assert verified.state == "verified"
    assert not AuditEvent.objects.filter(action="organization.suspend").exists()


def test_suspend_reinstate_cancel_and_illegal_transitions():
    reviewer = compliance_user()
    org = verified_org(reviewer=reviewer)
    with pytest.raises(IllegalTransition):
        organization_reinstate(organization=org, actor=reviewer, reason="nothing to reinstate")
    org = organization_suspend(organization=org, actor=reviewer, reason="impersonation report")
    assert org.state == "suspended" and org.suspension_cause == "compliance"
    org = organization_reinstate(organization=org, actor=reviewer, reason="report unfounded")
    assert org.state == "verified"
    org = organization_cancel(organization=org, actor=reviewer, reason="org asked to close")
    assert org.state == "cancelled"
    org.subscription.refresh_from_db()
    assert org.subscription.state == Subscription.State.CANCELED
    with pytest.raises(IllegalTransition):
        organization_cancel(organization=org, actor=reviewer, reason="again")

"""The organization's part of a refund preview (registered in apps.ready): the credit note the refund
writes on the org invoice it paid, and, when it ends the org subscription now, the badges that end
with it: every active affiliate's seat and every admin's badge."""

from __future__ import annotations

from monetization.services.refund_preview import RefundIntent
from subscriptions.entitlements import entitlements_given_by
from subscriptions.services.payments import refund_access_change

from ..models import Affiliation, Organization, OrganizationAdmin, OrgInvoice

# Badge holders listed by name in a preview (the count covers them all).
LISTED_HOLDERS = 20


def org_refund_preview(intent: RefundIntent) -> dict | None:
    invoice = OrgInvoice.objects.select_related("organization").filter(payment_id=intent.payment.pk).first()
    sub, transition = refund_access_change(intent.payment.pk, intent.revoke_access)
    org = invoice.organization if invoice is not None else None
    if org is None and sub is not None:
        org = Organization.objects.filter(subscription_id=sub.pk).first()
    if org is None:
        return None
    found: dict = {
        "organization": org.pk,
        "handle": org.handle,
        "credit_note": (
            {"invoice": invoice.number, "amount": str(intent.amount.amount), "currency": str(intent.amount.currency)}
            if invoice is not None
            else None
        ),
        "seats_losing_access": 0,
        "badges_ending": [],
    }
    # Only a revocation ends the subscription's entitling state now; a cancellation runs to the period end.
    if transition != "revoke" or sub is None or org.subscription_id != sub.pk:
        return found
    seats = Affiliation.objects.filter(organization_id=org.pk, state=Affiliation.State.ACTIVE)
    found["seats_losing_access"] = seats.count()
    holders = [
        *OrganizationAdmin.objects.filter(organization_id=org.pk).values_list("customer_id", "customer__external_id"),
        *seats.order_by("id").values_list("customer_id", "customer__external_id")[:LISTED_HOLDERS],
    ]
    for customer_id, external_id in holders:
        given = entitlements_given_by(customer_id, source="organization", source_id=org.pk, at=intent.at)
        if given["ends"]:
            found["badges_ending"].append({"customer": external_id, "entitlements_ending": given["ends"]})
    return found

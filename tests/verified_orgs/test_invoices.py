"""Organization invoices: numbered and open when issued, a PDF for org admins (API) and Finance (admin)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from monetization.errors import DomainError
from monetization.models import AuditEvent
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import staff_user, verified_org
from verified_orgs.models import OrgInvoice
from verified_orgs.services.billing import org_invoice_close

pytestmark = pytest.mark.django_db


@pytest.fixture
def app(client_with_scopes):
    return client_with_scopes("orgs:write")


def _as(app, customer):
    app.credentials(
        HTTP_AUTHORIZATION=app._credentials["HTTP_AUTHORIZATION"], HTTP_X_ACTING_CUSTOMER=customer.external_id
    )
    return app


def test_org_admin_downloads_the_invoice_pdf_and_no_one_else(app):
    org = verified_org(vat_id="DE123456789")
    invoice = OrgInvoice.objects.get(organization=org)
    assert invoice.vat_id == "DE123456789"
    url = f"/api/v1/orgs/{org.handle}/invoices/{invoice.number}/pdf"
    r = _as(app, org.billing_customer).get(url)
    assert r.status_code == 200 and r["Content-Type"] == "application/pdf"
    body = r.content
    assert body.startswith(b"%PDF-") and invoice.number.encode() in body and b"DE123456789" in body
    r = _as(app, CustomerFactory()).get(url)
    assert (r.status_code, r.json()["code"]) == (403, "not_org_admin")
    other = verified_org()
    r = _as(app, other.billing_customer).get(f"/api/v1/orgs/{other.handle}/invoices/{invoice.number}/pdf")
    assert (r.status_code, r.json()["code"]) == (404, "invoice_not_found")


def test_finance_downloads_the_pdf_in_the_admin_audited_support_cannot(client):
    org = verified_org()
    invoice = OrgInvoice.objects.get(organization=org)
    client.force_login(staff_user("finance", "Finance"))
    r = client.get(f"/admin/verified_orgs/orginvoice/{invoice.pk}/pdf/")
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
    download = AuditEvent.objects.get(action="organization.invoice_download")
    assert download.after == {"invoice": invoice.number} and download.actor_label
    client.force_login(staff_user("support", "Support"))
    r = client.get(f"/admin/verified_orgs/orginvoice/{invoice.pk}/pdf/")
    assert r.status_code in (302, 403)
    assert AuditEvent.objects.filter(action="organization.invoice_download").count() == 1


def test_tax_lines_follow_the_country_and_a_vat_id_reverse_charges(settings, stripe_billing):
    settings.VERIFIED_ORG_TAX_RATES = {"DE": "19"}
    taxed = verified_org(country="DE")
    business = verified_org(country="DE", vat_id="de 123456789")
    invoice = OrgInvoice.objects.get(organization=taxed)
    assert [(line.kind, line.amount) for line in invoice.lines.all()] == [
        ("base", 1000),
        ("seats", 0),
        ("tax", Decimal("190.00")),
    ]
    assert (invoice.tax, invoice.total) == (Decimal("190.00"), Decimal("1190.00"))
    assert stripe_billing.invoices[invoice.provider_invoice_id].total == 119000  # Stripe charges the same
    reverse = OrgInvoice.objects.get(organization=business)
    assert (reverse.tax, reverse.total, reverse.vat_id) == (0, 1000, "DE 123456789")
    assert reverse.lines.get(kind="tax").description == "Reverse charge, VAT id DE 123456789"


def test_finance_voids_or_writes_off_an_open_invoice_at_stripe_and_here(stripe_billing):
    finance, support = staff_user("fin", "Finance"), staff_user("sup", "Support")
    declined = [CustomerFactory(), CustomerFactory()]
    stripe_billing.failing_customers.update(c.external_id for c in declined)  # first invoices stay open
    first, second = (verified_org(billing_customer=c) for c in declined)
    a, b = OrgInvoice.objects.get(organization=first), OrgInvoice.objects.get(organization=second)
    paid_at_stripe = OrgInvoice.objects.get(organization=verified_org())
    with pytest.raises(DomainError) as collected:
        org_invoice_close(invoice=paid_at_stripe, transition="void", actor=finance, reason="too late")
    assert (collected.value.code, collected.value.status) == ("billing_provider_failed", 502)
    assert OrgInvoice.objects.get(pk=paid_at_stripe.pk).status == OrgInvoice.Status.OPEN
    with pytest.raises(DomainError) as refused:
        org_invoice_close(invoice=a, transition="void", actor=support, reason="duplicate")
    assert refused.value.code == "permission_denied"
    with pytest.raises(DomainError) as no_reason:
        org_invoice_close(invoice=a, transition="void", actor=finance, reason=" ")
    assert no_reason.value.code == "reason_required"
    assert OrgInvoice.objects.get(pk=a.pk).status == OrgInvoice.Status.OPEN

    org_invoice_close(invoice=a, transition="void", actor=finance, reason="issued twice")
    org_invoice_close(invoice=b, transition="mark_uncollectible", actor=finance, reason="company dissolved")
    assert OrgInvoice.objects.get(pk=a.pk).status == OrgInvoice.Status.VOID
    assert OrgInvoice.objects.get(pk=b.pk).status == OrgInvoice.Status.UNCOLLECTIBLE
    assert stripe_billing.invoices[a.provider_invoice_id].status == "void"
    assert stripe_billing.invoices[b.provider_invoice_id].status == "uncollectible"
    audit = AuditEvent.objects.get(action="organization.invoice_void")
    assert (audit.before["status"], audit.after["status"], audit.reason) == ("open", "void", "issued twice")
    with pytest.raises(DomainError) as again:
        org_invoice_close(invoice=a, transition="mark_uncollectible", actor=finance, reason="late")
    assert again.value.code == "illegal_transition"


def test_finance_voids_from_the_invoice_page_with_a_reason(client, stripe_billing):
    declined = CustomerFactory()
    stripe_billing.failing_customers.add(declined.external_id)
    invoice = OrgInvoice.objects.get(organization=verified_org(billing_customer=declined))
    client.force_login(staff_user("fin2", "Finance"))
    page = client.get(f"/admin/verified_orgs/orginvoice/{invoice.pk}/change/")
    url = reverse("admin:verified_orgs_orginvoice_transition", args=[invoice.pk, "void"])
    assert page.status_code == 200 and url in page.content.decode()
    assert client.post(url, {"reason": ""}).status_code == 200  # the form again: a reason is required
    assert OrgInvoice.objects.get(pk=invoice.pk).status == OrgInvoice.Status.OPEN
    assert client.post(url, {"reason": "sent to the wrong company"}).status_code == 302
    assert OrgInvoice.objects.get(pk=invoice.pk).status == OrgInvoice.Status.VOID
    assert AuditEvent.objects.get(action="organization.invoice_void").reason == "sent to the wrong company"

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monetization.models import AuditEvent
from tests.monetization.factories import CustomerFactory
from tests.verified_orgs.factories import applied_org, compliance_user, org_catalog, staff_user, verified_org
from verified_orgs.services.affiliations import affiliation_accept, affiliation_invite

pytestmark = pytest.mark.django_db


def _login(client, user):
    client.force_login(user)
    return client


def test_review_queue_is_oldest_first_and_shows_documents(client):
    compliance = compliance_user()
    first, second = applied_org(name="First"), applied_org(name="Second")
    r = _login(client, compliance).get("/admin/verified_orgs/reviewqueueitem/")
    assert r.status_code == 200
    html = r.content.decode()
    assert html.index(first.handle) < html.index(second.handle)
    assert "reg.pdf" in html


def test_compliance_verifies_through_transition_form_with_audit(client):
    org_catalog()
    compliance = compliance_user()
    org = applied_org()
    c = _login(client, compliance)
    page = c.get(f"/admin/verified_orgs/organization/{org.pk}/change/")
    assert page.status_code == 200 and b"Start review" in page.content and b"Review history" in page.content
    url = f"/admin/verified_orgs/organization/{org.pk}/transition/"
    assert c.post(url + "start_review/", {"reason": "looking"}).status_code == 302
    assert c.post(url + "verify/", {"reason": "all good"}).status_code == 302
    org.refresh_from_db()
    assert org.state == "verified" and org.subscription is not None
    ev = AuditEvent.objects.get(action="organization.verify")
    assert ev.actor == compliance and ev.reason == "all good"
    # reject needs a reason: the form refuses an empty one and nothing changes
    other = applied_org()
    r = c.post(f"/admin/verified_orgs/organization/{other.pk}/transition/reject/", {"reason": ""})
    assert r.status_code == 200
    other.refresh_from_db()
    assert other.state == "applied"


@pytest.mark.parametrize("role", ["Support", "Finance"])
def test_other_roles_cannot_verify_from_admin(client, role):
    org_catalog()
    org = applied_org()
    user = staff_user(f"x-{role}", role)
    c = _login(client, user)
    page = c.get(f"/admin/verified_orgs/organization/{org.pk}/change/")
    assert page.status_code == 200 and b"Start review" not in page.content
    c.post(f"/admin/verified_orgs/organization/{org.pk}/transition/start_review/", {"reason": "x"})
    org.refresh_from_db()
    assert org.state == "applied"
    assert not AuditEvent.objects.filter(action="organization.start_review").exists()


def test_organization_page_query_count_is_constant(client):
    compliance = compliance_user()
    org = verified_org(reviewer=compliance)
    c = _login(client, compliance)
    url = f"/admin/verified_orgs/organization/{org.pk}/change/"

    def add(n):
        for _ in range(n):
            cust = CustomerFactory()
            _, token = affiliation_invite(organization=org, customer=cust, invited_by=org.billing_customer)
            affiliation_accept(token=token, customer=cust)

    add(2)
    c.get(url)
    with CaptureQueriesContext(connection) as few:
        assert c.get(url).status_code == 200
    add(60)
    with CaptureQueriesContext(connection) as many:
        r = c.get(url + "?seats_page=2")
        assert r.status_code == 200
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert b"page 2 of 2" in r.content


def test_staff_set_seat_limit_in_admin_through_the_service(client):
    compliance = compliance_user()
    org = verified_org(reviewer=compliance)
    admin_row = org.admins.get()
    c = _login(client, compliance)
    r = c.post(
        f"/admin/verified_orgs/organization/{org.pk}/change/",
        {
            "name": org.name,
            "website": "https://example.org",
            "country": "US",
            "seat_limit": "25",
            "admins-TOTAL_FORMS": "1",
            "admins-INITIAL_FORMS": "1",
            "admins-MIN_NUM_FORMS": "0",
            "admins-MAX_NUM_FORMS": "1000",
            "admins-0-id": str(admin_row.pk),
            "admins-0-organization": str(org.pk),
            "admins-0-customer": str(admin_row.customer_id),
        },
    )
    assert r.status_code == 302, r.content.decode()[:3000]
    org.refresh_from_db()
    assert org.seat_limit == 25
    ev = AuditEvent.objects.get(action="organization.set_seat_limit")
    assert ev.actor == compliance and ev.after["seat_limit"] == 25


def test_queue_entry_opens_the_organization_page(client):
    compliance = compliance_user()
    org = applied_org()
    r = _login(client, compliance).get(f"/admin/verified_orgs/reviewqueueitem/{org.pk}/change/")
    assert r.status_code == 302 and r["Location"].endswith(f"/admin/verified_orgs/organization/{org.pk}/change/")


def _org_form(org, **changes):
    admin_row = org.admins.get(customer=org.billing_customer)
    data = {
        "name": org.name,
        "website": org.website,
        "country": org.country,
        "seat_limit": "" if org.seat_limit is None else str(org.seat_limit),
        "admins-TOTAL_FORMS": "1",
        "admins-INITIAL_FORMS": "1",
        "admins-MIN_NUM_FORMS": "0",
        "admins-MAX_NUM_FORMS": "1000",
        "admins-0-id": str(admin_row.pk),
        "admins-0-organization": str(org.pk),
        "admins-0-customer": str(admin_row.customer_id),
    }
    data.update(changes)
    return data


def test_edits_in_the_admin_go_through_the_services_with_before_and_after(client):
    compliance = compliance_user()
    org = verified_org(reviewer=compliance)
    old_name = org.name
    c = _login(client, compliance)
    r = c.post(f"/admin/verified_orgs/organization/{org.pk}/change/", _org_form(org, name="Acme Corp", country="gb"))
    assert r.status_code == 302, r.content.decode()[:3000]
    org.refresh_from_db()
    assert (org.name, org.country) == ("Acme Corp", "GB")
    ev = AuditEvent.objects.get(action="organization.update")
    assert ev.actor == compliance
    assert ev.before == {"name": old_name, "country": "US"}
    assert ev.after == {"name": "Acme Corp", "country": "GB"}


def test_adding_and_removing_an_org_admin_in_the_admin_is_audited(client):
    from django.contrib.auth import get_user_model

    org = verified_org()
    # The inline edits organization admins only for those holding its model's permissions (superusers).
    admin_user = get_user_model().objects.create_superuser("root", password="pw")
    newcomer = CustomerFactory()
    c = _login(client, admin_user)
    form = _org_form(
        org,
        **{
            "admins-TOTAL_FORMS": "2",
            "admins-1-organization": str(org.pk),
            "admins-1-customer": str(newcomer.pk),
        },
    )
    r = c.post(f"/admin/verified_orgs/organization/{org.pk}/change/", form)
    assert r.status_code == 302, r.content.decode()[:3000]
    assert set(org.admins.values_list("customer_id", flat=True)) == {org.billing_customer_id, newcomer.pk}
    added = AuditEvent.objects.get(action="organization.admin_add")
    assert (added.actor, added.customer_id, added.after) == (admin_user, newcomer.pk, {"admin": newcomer.external_id})

    row = org.admins.get(customer=newcomer)
    form = _org_form(
        org,
        **{
            "admins-TOTAL_FORMS": "2",
            "admins-INITIAL_FORMS": "2",
            "admins-1-id": str(row.pk),
            "admins-1-organization": str(org.pk),
            "admins-1-customer": str(newcomer.pk),
            "admins-1-DELETE": "on",
        },
    )
    r = c.post(f"/admin/verified_orgs/organization/{org.pk}/change/", form)
    assert r.status_code == 302, r.content.decode()[:3000]
    assert list(org.admins.values_list("customer_id", flat=True)) == [org.billing_customer_id]
    assert AuditEvent.objects.filter(action="organization.admin_remove", customer_id=newcomer.pk).count() == 1


def test_review_notes_are_saved_and_audited_by_the_service(client):
    from verified_orgs.models import VerificationApplication

    compliance = compliance_user()
    org = applied_org()
    application = VerificationApplication.objects.get(organization=org)
    r = _login(client, compliance).post(
        f"/admin/verified_orgs/verificationapplication/{application.pk}/change/", {"review_notes": "called them"}
    )
    assert r.status_code == 302, r.content.decode()[:2000]
    application.refresh_from_db()
    assert application.review_notes == "called them"
    ev = AuditEvent.objects.get(action="verification_application.notes")
    assert ev.actor == compliance and ev.after == {"review_notes": "called them"}


def test_the_services_refuse_staff_without_the_permission():
    from monetization.errors import PermissionDenied
    from verified_orgs.services.organizations import organization_admin_add, organization_update

    org = verified_org()
    support = staff_user("sup", "Support")
    with pytest.raises(PermissionDenied):
        organization_update(organization=org, actor=support, changes={"name": "Hijacked"})
    with pytest.raises(PermissionDenied):
        organization_admin_add(organization=org, customer=CustomerFactory(), actor=support)
    org.refresh_from_db()
    assert org.name != "Hijacked" and org.admins.count() == 1
    assert not AuditEvent.objects.filter(action__in=["organization.update", "organization.admin_add"]).exists()

"""Issue 14, console fault 7 (organizations): what takes a badge away is listed last, labelled for what it
does and confirmed with a reason; the transition page has a title and no stray "None"."""

import re

import pytest

from tests.verified_orgs.factories import applied_org, compliance_user, org_catalog, verified_org
from verified_orgs.services.organizations import organization_start_review

pytestmark = pytest.mark.django_db


@pytest.fixture
def org_and_compliance(client, stripe_billing_double):
    org_catalog()
    compliance = compliance_user()
    client.force_login(compliance)
    return verified_org(reviewer=compliance), client


def test_cancel_comes_after_verify_and_says_what_it_cancels(org_and_compliance):
    _, client = org_and_compliance
    compliance = compliance_user("reviewer-two")
    org = applied_org()
    organization_start_review(organization=org, reviewer=compliance)
    html = client.get(f"/admin/verified_orgs/organization/{org.pk}/change/").content.decode()
    tools = re.search(r'<ul class="object-tools">(.*?)</ul>', html, re.S).group(1)
    labels = [re.sub(r"\s+", " ", label).strip() for label in re.findall(r"<a [^>]*>([^<]+)</a>", tools)]
    assert labels.index("Verify") < labels.index("Reject…") and labels.index("Verify") < labels.index(
        "Cancel organization…"
    ), labels
    assert "Cancel" not in labels


def test_cancelling_needs_a_confirmation_and_a_reason(org_and_compliance):
    org, client = org_and_compliance
    url = f"/admin/verified_orgs/organization/{org.pk}/transition/cancel/"
    refused = client.post(url, {"reason": "closing down"})
    assert refused.status_code == 200 and 'name="confirm"' in refused.content.decode()
    org.refresh_from_db()
    assert org.state == "verified"
    assert client.post(url, {"reason": "closing down", "confirm": "on"}).status_code == 302
    org.refresh_from_db()
    assert org.state == "cancelled"


def test_the_transition_page_has_a_title_and_no_none(org_and_compliance):
    org, client = org_and_compliance
    html = client.get(f"/admin/verified_orgs/organization/{org.pk}/transition/suspend/").content.decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip()
    assert title.startswith("Suspend…: "), title
    content = html[html.index('id="content"') :]
    assert "None" not in content

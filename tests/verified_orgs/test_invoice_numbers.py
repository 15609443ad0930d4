"""Invoice numbers are gapless per year, also when organizations are verified at the same moment."""

import datetime

import pytest
from django.db import close_old_connections, transaction

from monetization import clock
from tests.concurrency import run_at_once
from tests.verified_orgs.factories import applied_org, compliance_user, org_catalog
from verified_orgs.models import OrgInvoice
from verified_orgs.services.organizations import organization_start_review, organization_verify

pytestmark = pytest.mark.django_db(transaction=True)

AT = datetime.datetime(2027, 6, 1, 9, tzinfo=datetime.UTC)
N = 50


def test_fifty_concurrent_verifications_get_gapless_numbers(stripe_billing):
    org_catalog()
    reviewer = compliance_user()
    orgs = [applied_org() for _ in range(N)]
    for org in orgs:
        organization_start_review(organization=org, reviewer=reviewer)

    def verify(org):
        with clock.frozen(AT):
            organization_verify(organization=org, reviewer=reviewer, reason="documents check out")

    errors = run_at_once(verify, [(org,) for org in orgs])
    close_old_connections()
    assert errors == []
    numbers = sorted(OrgInvoice.objects.values_list("number", flat=True))
    assert numbers == [f"VO-2027-{n:06d}" for n in range(1, N + 1)]
    assert OrgInvoice.objects.filter(status=OrgInvoice.Status.OPEN).count() == N


def test_a_rolled_back_verification_gives_its_number_back(stripe_billing):
    org_catalog()
    reviewer = compliance_user()
    first, second = applied_org(), applied_org()
    for org in (first, second):
        organization_start_review(organization=org, reviewer=reviewer)
    with clock.frozen(AT):
        with pytest.raises(RuntimeError), transaction.atomic():
            organization_verify(organization=first, reviewer=reviewer, reason="ok")
            raise RuntimeError("rolled back after the number was taken")
        organization_verify(organization=second, reviewer=reviewer, reason="ok")
        organization_verify(organization=first, reviewer=reviewer, reason="ok")  # retried: Stripe's same objects
    numbers = dict(OrgInvoice.objects.values_list("organization_id", "number"))
    assert numbers == {second.pk: "VO-2027-000001", first.pk: "VO-2027-000002"}
    assert len(stripe_billing.billing) == 2  # the retry found the subscription its first attempt created

import io
import random

import pytest

from monetization.models import Customer
from monetization.services.ledger import ledger_report
from verified_orgs.demo import organizations as demo
from verified_orgs.models import Affiliation, Organization, OrgInvoice, SeatLedgerEntry

pytestmark = pytest.mark.django_db


def test_demo_seed_covers_every_state_and_is_idempotent():
    out = io.StringIO()
    demo.seed(rng=random.Random(1), out=out, options={})
    assert "skipped" in out.getvalue() and not Organization.objects.exists()

    Customer.objects.bulk_create(
        [Customer(external_id=f"demo-{i}", handle=f"demo{i}", country="US") for i in range(700)]
    )
    demo.seed(rng=random.Random(1), out=out, options={})
    states = set(Organization.objects.values_list("state", flat=True))
    assert states == set(Organization.State.values)
    acme = Organization.objects.get(handle="acmenews")
    active = Affiliation.objects.filter(organization=acme, state="active").count()
    assert active == 300
    assert SeatLedgerEntry.objects.filter(organization=acme).order_by("-id").first().quantity == active
    acme.subscription.refresh_from_db()
    assert acme.subscription.quantity == active
    assert Organization.objects.filter(state__in=Organization.QUEUE_STATES).count() == 5
    # Stripe collected each verified org's first invoice (what its invoice.paid does): paid, booked once.
    firsts = OrgInvoice.objects.filter(organization__state__in=["verified", "suspended", "cancelled"])
    assert firsts.exists() and set(firsts.values_list("status", flat=True)) == {"paid"}
    assert all(i.payment.provider_reference == i.provider_invoice_id for i in firsts)
    assert ledger_report().balanced
    counts = (Organization.objects.count(), Affiliation.objects.count(), SeatLedgerEntry.objects.count())
    demo.seed(rng=random.Random(1), out=out, options={})
    assert (Organization.objects.count(), Affiliation.objects.count(), SeatLedgerEntry.objects.count()) == counts

"""The annual per-creator totals for tax reporting: earned, clawed back and paid per creator and currency,
paid per quarter; from the admin (with the export permission) and as a command."""

import csv
import io

import pytest
from django.core.management import call_command

from creators.models import Payout
from monetization import clock

from .factories import make_creator, staff
from .test_clawbacks import SEPT, Fans, at, refund, run_cycle

pytestmark = pytest.mark.django_db


def test_annual_totals_per_creator_and_currency(client):
    finance = staff("alice", "Finance"), staff("bob", "Finance")
    creator = make_creator()
    fans = Fans(creator)
    fans.pay("20.00", "USD", at(SEPT))
    refunded = fans.pay("20.00", "EUR", at(SEPT))
    fans.pay("20.00", "EUR", at(SEPT, 12))
    refund(refunded, "20.00", at(SEPT, 20))
    with clock.frozen(at(SEPT, 28)):  # paid in September: the third quarter
        run_cycle(SEPT, finance)
    assert Payout.objects.filter(creator=creator, status="paid").count() == 2
    out = io.StringIO()
    call_command("export_creator_totals", "2026", stdout=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    got = {r["currency"]: r for r in rows if r["creator_id"] == str(creator.pk)}
    assert {k: got["EUR"][k] for k in ("earned", "clawed_back", "paid", "payouts", "paid_q3", "paid_q4")} == {
        "earned": "38.80",
        "clawed_back": "19.40",
        "paid": "19.40",
        "payouts": "1",
        "paid_q3": "19.40",
        "paid_q4": "0.00",
    }
    assert (got["USD"]["earned"], got["USD"]["paid"], got["USD"]["tax_form_type"]) == ("19.40", "19.40", "w9")
    client.force_login(staff("sam", "Support"))
    assert client.get("/admin/creators/revenuesharecycle/tax-totals/2026.csv").status_code == 403
    client.force_login(staff("fin", "Finance"))
    response = client.get("/admin/creators/revenuesharecycle/tax-totals/2026.csv")
    assert response.status_code == 200
    assert b"".join(response.streaming_content).decode().replace("\r\n", "\n") == out.getvalue().replace("\r\n", "\n")

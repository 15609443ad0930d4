"""Console fault 9: one money and one date format, sentences instead of codes in admin messages, lists
that fit a 1440 px screen for every role, and a Plan page whose cost does not grow with its prices."""

import datetime
import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from djmoney.money import Money

from monetization.errors import STAFF_MESSAGES, CreatorErrorCode, ErrorCode, FxErrorCode, OrgErrorCode
from monetization.models import Payment, Provider
from tests.creators.factories import make_creator
from tests.monetization.factories import CustomerFactory
from tests.monetization.support_fixtures import fake_providers, make_payment, make_staff  # noqa: F401
from tests.subscriptions.factories import PlanFactory, PriceFactory

pytestmark = pytest.mark.django_db

ROLES = ("Support", "Finance", "Compliance")
# Seven data columns (beside the selection box) is what fits 1440 px with ids, names and amounts.
MAX_COLUMNS = 7


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def header_cells(html: str) -> list[str]:
    thead = re.search(r'<table id="result_list">\s*<thead>(.*?)</thead>', html, re.S)
    cells = re.findall(r'<th scope="col"([^>]*)>', thead.group(1)) if thead else []
    return [c for c in cells if "action-checkbox-column" not in c]


@pytest.mark.parametrize("role", ROLES)
def test_every_list_a_role_opens_has_at_most_seven_columns(make_staff, role):
    client = logged_in(make_staff(role))
    opened = 0
    too_wide = {}
    for model, model_admin in list(admin.site._registry.items()):
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        answer = client.get(url)
        if answer.status_code != 200:
            continue  # not this role's list (403) or a list that redirects
        opened += 1
        # An empty list renders no table: then the columns it would show.
        columns = len(header_cells(answer.content.decode())) or len(model_admin.get_list_display(answer.wsgi_request))
        if columns > MAX_COLUMNS:
            too_wide[model._meta.label] = columns
    assert opened >= 10 and not too_wide, too_wide


def test_money_and_dates_read_the_same_in_lists_and_on_the_customer_page(fake_providers, make_payment, make_staff):
    customer = CustomerFactory()
    dollars = make_payment(amount="1194.99", customer=customer)
    yen = make_payment(amount="1380", currency="JPY", customer=customer, provider=Provider.GOOGLE_PLAY)
    at = datetime.datetime(2026, 11, 2, 7, 5, tzinfo=datetime.UTC)
    Payment.objects.filter(pk=dollars.pk).update(occurred_at=at)
    client = logged_in(make_staff("Support"))

    listed = client.get(reverse("admin:monetization_payment_changelist")).content.decode()
    assert "1,194.99 USD" in listed and "1,380 JPY" in listed
    assert "2026-11-02 07:05" in listed and "a.m." not in listed and "$" not in listed

    page = client.get(reverse("admin:monetization_customer_support", args=[customer.pk])).content.decode()
    payments = page[page.index('id="payments"') :]
    assert "1,194.99 USD" in payments and "1,380 JPY" in payments and "2026-11-02 07:05" in payments
    summary = page[page.index('id="customer-summary"') :]
    assert "1,380 JPY" in summary[: summary.index("</p>")]
    assert str(Money(Decimal("1194.99"), "USD")) == "1,194.99 USD" and str(yen.amount) == "1,380 JPY"


def test_creator_payouts_print_money_the_same_way(client):
    from creators.models import Payout
    from tests.creators.factories import staff
    from tests.creators.test_payouts import approved_cycle

    cycle = approved_cycle(1)
    payout = Payout.objects.get(cycle=cycle)
    client.force_login(staff("fin", "Finance"))
    page = client.get(f"/admin/creators/creatoraccount/{payout.creator_id}/change/").content.decode()
    assert f"{payout.amount:,.2f} USD" in page
    listed = client.get("/admin/creators/payout/").content.decode()
    assert f"{payout.amount:,.2f}" in listed


def test_admin_messages_are_sentences_not_codes(make_staff):
    client = logged_in(make_staff("Compliance"))
    creator = make_creator()
    answer = client.post(
        f"/admin/creators/creatoraccount/{creator.pk}/transition/", {"transition": "suspend"}, follow=True
    )
    shown = [str(m) for m in answer.context["messages"]]
    assert shown and shown[0].startswith("Give a reason.") and "reason_required" not in shown[0]
    codes = {
        value
        for kind in (ErrorCode, OrgErrorCode, CreatorErrorCode, FxErrorCode)
        for name, value in vars(kind).items()
        if name.isupper()
    }
    assert set(STAFF_MESSAGES) <= codes  # the sentences are keyed by the registry's codes, no others


def test_the_plan_page_costs_the_same_whatever_its_prices(make_staff):
    client = logged_in(make_staff(superuser=True))
    plan = PlanFactory()

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            answer = client.get(reverse("admin:subscriptions_plan_change", args=[plan.pk]))
        assert answer.status_code == 200
        return len(captured)

    PriceFactory(plan=plan, country="US")
    queries()  # the first page also loads the session's user and permissions
    few = queries()
    for i in range(60):
        PriceFactory(plan=plan, country=f"{chr(65 + i // 26)}{chr(65 + i % 26)}", amount=Money("5.00", "EUR"))
    assert queries() == few
    page = client.get(reverse("admin:subscriptions_plan_change", args=[plan.pk])).content.decode()
    assert "EUR: 60 current of 60 in 60 countries" in page
    prices = reverse("admin:subscriptions_price_changelist") + f"?plan__id__exact={plan.pk}"
    assert prices.replace("&", "&amp;") in page or prices in page
    assert client.get(prices).status_code == 200

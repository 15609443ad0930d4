"""Console fault 5: the audit trail answers "what did Support do today"; journal lists show amounts, with filters."""

import csv
import datetime
import io

import pytest
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from monetization import clock
from monetization.models import AuditEvent
from monetization.services.audit import audit_event_build, audit_event_write
from tests.monetization.factories import CustomerFactory, JournalEntryFactory
from tests.monetization.support_fixtures import make_staff  # noqa: F401

pytestmark = pytest.mark.django_db

AUDIT = "admin:monetization_auditevent_changelist"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def note(actor, action, customer, reason, *, days_ago=0):
    event = audit_event_build(action=action, obj=customer, actor=actor, customer=customer, reason=reason)
    event.occurred_at = clock.now() - datetime.timedelta(days=days_ago)
    return audit_event_write(event)


@pytest.fixture
def trail(make_staff):
    support, other = make_staff("Support"), make_staff("Support")
    customer = CustomerFactory()
    return {
        "support": support,
        "today": note(support, "customer.note", customer, "called about a double charge"),
        "yesterday": note(support, "customer.note", customer, "old call", days_ago=1),
        "other": note(other, "grant.create", customer, "goodwill month"),
    }


def listed(response) -> set[int]:
    assert response.status_code == 200
    return {e.pk for e in response.context["cl"].result_list}


def test_filter_by_staff_member_and_day(make_staff, trail):
    client = login(make_staff("Compliance"))
    today = clock.now()
    response = client.get(
        reverse(AUDIT),
        {
            "actor": trail["support"].pk,
            "occurred_at__year": today.year,
            "occurred_at__month": today.month,
            "occurred_at__day": today.day,
        },
    )
    assert listed(response) == {trail["today"].pk}
    html = response.content.decode()
    # The reason is a column of the list, beside the action.
    assert "called about a double charge" in html
    assert trail["support"].username in html


def test_filter_by_action_and_object(make_staff, trail):
    client = login(make_staff("Compliance"))
    assert listed(client.get(reverse(AUDIT), {"action": "grant.create"})) == {trail["other"].pk}
    assert listed(client.get(reverse(AUDIT), {"object_type": "monetization.customer", "action": "customer.note"})) == {
        trail["today"].pk,
        trail["yesterday"].pk,
    }
    # A hand-edited actor id is a filter that matches nobody, not an error page.
    assert listed(client.get(reverse(AUDIT), {"actor": "abc"})) == set()


def test_compliance_exports_the_filtered_trail_and_the_export_is_audited(make_staff, trail):
    compliance = make_staff("Compliance")
    response = login(compliance).get(
        reverse("admin:monetization_auditevent_export_csv"), {"actor": trail["support"].pk}
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted(r["reason"] for r in rows) == ["called about a double charge", "old call"]
    assert {r["actor__username"] for r in rows} == {trail["support"].username}
    export = AuditEvent.objects.get(action="export.csv", actor=compliance)
    assert export.object_type == "monetization.auditevent"


def test_support_may_not_export_the_trail(make_staff, trail):
    support = make_staff("Support")
    response = login(support).get(reverse("admin:monetization_auditevent_export_csv"))
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="export.csv").exists()


def test_journal_entries_show_their_amount_and_filter_by_day(make_staff):
    entry = JournalEntryFactory(lines=Money("1234.50", "EUR"))
    JournalEntryFactory(posted_at=clock.now() - datetime.timedelta(days=40))  # the books are append-only
    client = login(make_staff("Finance"))
    today = clock.now()
    response = client.get(
        reverse("admin:monetization_journalentry_changelist"),
        {"posted_at__year": today.year, "posted_at__month": today.month, "posted_at__day": today.day},
    )
    assert response.status_code == 200
    assert {e.pk for e in response.context["cl"].result_list} == {entry.pk}
    assert "1,234.50 EUR" in response.content.decode()


def test_journal_lines_filter_by_account(make_staff):
    JournalEntryFactory()
    client = login(make_staff("Finance"))
    response = client.get(reverse("admin:monetization_journalline_changelist"), {"account": "cash:stripe"})
    assert response.status_code == 200
    assert {line.account for line in response.context["cl"].result_list} == {"cash:stripe"}

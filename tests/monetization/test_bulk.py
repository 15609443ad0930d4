"""bulk_update_rows writes what Model.save would, for many rows in one statement."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from monetization.bulk import bulk_update_rows
from monetization.models import WebhookEvent
from subscriptions.models import Subscription
from tests.subscriptions.factories import PlanFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def test_writes_every_named_field_of_every_row_and_nothing_else():
    subs = SubscriptionFactory.create_batch(3)
    other_plan = PlanFactory()
    untouched = {s.pk: s.quantity for s in subs}
    end = datetime.datetime(2027, 2, 28, 23, 30, tzinfo=datetime.UTC)
    for i, sub in enumerate(subs):
        Subscription.objects.filter(pk=sub.pk).update(quantity=7 + i)  # written elsewhere meanwhile
        sub.__dict__["state"] = ["canceled", "expired", "in_grace_period"][i]  # FSM field is protected
        sub.current_period_end = end + datetime.timedelta(days=i)
        sub.grace_end = None if i else end
        sub.auto_renew = bool(i % 2)
        sub.cancel_reason = f"reason '{i}'; --"
        sub.plan = other_plan
    with CaptureQueriesContext(connection) as queries:
        bulk_update_rows(subs, ["state", "current_period_end", "grace_end", "auto_renew", "cancel_reason", "plan"])
    assert len(queries) == 1
    for i, sub in enumerate(subs):
        row = Subscription.objects.get(pk=sub.pk)
        assert row.state == sub.state and row.current_period_end == end + datetime.timedelta(days=i)
        assert row.grace_end == (None if i else end) and row.auto_renew is bool(i % 2)
        assert row.cancel_reason == f"reason '{i}'; --" and row.plan_id == other_plan.pk
        assert row.quantity == 7 + i != untouched[sub.pk]


def test_json_and_text_columns_round_trip():
    events = [
        WebhookEvent.objects.create(
            provider="stripe",
            event_id=f"evt_bulk_{i}",
            event_type="x",
            occurred_at=datetime.datetime.now(datetime.UTC),
            payload={},
        )
        for i in range(2)
    ]
    for i, event in enumerate(events):
        event.payload = {"n": i, "nested": ["ü", None]}
        event.note = "ok" * i
    bulk_update_rows(events, ["payload", "note"])
    assert [(e.payload, e.note) for e in WebhookEvent.objects.filter(pk__in=[e.pk for e in events]).order_by("pk")] == [
        ({"n": 0, "nested": ["ü", None]}, ""),
        ({"n": 1, "nested": ["ü", None]}, "ok"),
    ]


def test_nothing_to_write_is_no_statement():
    with CaptureQueriesContext(connection) as queries:
        bulk_update_rows([], ["state"])
    assert not queries

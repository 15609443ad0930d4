"""Finance's cycle page offers what the cycle's state machine allows this user, and every button
goes through a service that records who pressed it (the long runs included)."""

import datetime
import re

import pytest
from django.core.management import call_command

from creators.models import Payout, RevenueShareCycle
from creators.services.cycles import cycle_approve, cycle_compute, cycle_submit
from monetization.models import AuditEvent

from .factories import engagement, make_creator, post_revenue, staff

pytestmark = pytest.mark.django_db
SEPT = datetime.date(2026, 9, 1)
AT = datetime.datetime(2026, 9, 10, tzinfo=datetime.UTC)


@pytest.fixture
def finance():
    creator = make_creator()
    engagement(creator, SEPT, impressions=10_000)
    post_revenue("100.00", at=AT)
    return staff("alice", "Finance"), staff("bob", "Finance")


def buttons(client, cycle) -> list[str]:
    """The transition buttons (the dry run, always offered to Finance, left out)."""
    page = client.get(f"/admin/creators/revenuesharecycle/{cycle.pk}/change/").content.decode()
    return [op for op in re.findall(r'name="op" value="([a-z_]+)"', page) if op != "dry_run"]


def act(client, cycle, op, **data):
    return client.post(f"/admin/creators/revenuesharecycle/{cycle.pk}/act/", {"op": op, **data})


def test_the_page_offers_the_transitions_the_user_may_take_in_this_state(client, finance):
    alice, bob = finance
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    client.force_login(alice)
    assert buttons(client, cycle) == ["start_computing"]
    RevenueShareCycle.objects.filter(pk=cycle.pk).update(state="computing")  # a computation cut short
    assert buttons(client, cycle) == ["start_computing"]
    RevenueShareCycle.objects.filter(pk=cycle.pk).update(state="open")
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    assert buttons(client, cycle) == ["submit", "reopen"]
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    assert buttons(client, cycle) == ["reject", "reopen"]  # four-eyes: not alice's to approve
    client.force_login(bob)
    assert buttons(client, cycle) == ["approve", "reject", "reopen"]
    client.force_login(staff("sam", "Support"))
    assert buttons(client, cycle) == []


def test_compute_and_pay_are_queued_by_services_that_record_who_asked(
    client, finance, django_capture_on_commit_callbacks
):
    alice, bob = finance
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        act(client, cycle, "start_computing")  # tasks run eagerly here: queued means run
    cycle.refresh_from_db()
    assert cycle.state == "computed" and cycle.computed_by == alice
    requested = AuditEvent.objects.get(action="cycle.compute_requested")
    assert requested.actor == alice and requested.before == {"state": "open"}

    cycle_submit(cycle_id=cycle.pk, actor=alice)
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    client.force_login(bob)
    with django_capture_on_commit_callbacks(execute=True):
        act(client, cycle, "start_paying")
    cycle.refresh_from_db()
    assert cycle.state == "paid"
    assert AuditEvent.objects.get(action="cycle.pay_requested").actor == bob
    assert AuditEvent.objects.get(action="cycle.start_paying").actor == bob
    assert AuditEvent.objects.get(action="cycle.paid").actor == bob
    assert set(Payout.objects.filter(cycle=cycle).values_list("status", flat=True)) == {"paid"}


def test_a_refused_request_queues_nothing(client, finance, django_capture_on_commit_callbacks):
    alice, _ = finance
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    client.force_login(staff("sam", "Support"))
    with django_capture_on_commit_callbacks(execute=True) as queued:
        act(client, cycle, "start_computing")
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True) as queued_pay:
        act(client, cycle, "start_paying")  # an open cycle is not paid
    assert queued == [] and queued_pay == []
    cycle.refresh_from_db()
    assert cycle.state == "open"
    assert not AuditEvent.objects.filter(action__in=["cycle.compute_requested", "cycle.pay_requested"]).exists()


def test_the_pay_command_records_its_cause(finance):
    alice, bob = finance
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    cycle_compute(cycle_id=cycle.pk, actor=alice)
    cycle_submit(cycle_id=cycle.pk, actor=alice)
    cycle_approve(cycle_id=cycle.pk, actor=bob, reason="figures reviewed")
    call_command("pay_cycle", str(cycle.pk), stdout=None)
    started = AuditEvent.objects.get(action="cycle.start_paying")
    assert (started.actor, started.actor_kind, started.actor_label) == (None, "system", "command:pay_cycle")


def test_a_broker_outage_queues_nothing_and_records_no_request(client, finance, settings):
    """The broker is down when Finance presses Compute: the page says so, no audit row claims a run
    that was never queued, and the cycle is untouched (pressing again later works)."""
    from backoffice.celery import app as celery_app
    from tests.celery_worker import _reset_connections

    alice, _ = finance
    cycle = RevenueShareCycle.objects.create(period=SEPT)
    client.force_login(alice)
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    # As tests/celery_worker.broker() points publishing elsewhere: Django's setting (which Celery reads
    # through its CELERY_ namespace) and the app's own keys, restored after. Setting the namespaced key
    # on the app instead would pin it for every later test.
    previous = {key: celery_app.conf.get(key) for key in ("broker_url", "task_always_eager")}
    celery_app.conf.update(broker_url=dead, task_always_eager=False)
    settings.CELERY_BROKER_URL = dead
    settings.CELERY_TASK_ALWAYS_EAGER = False
    _reset_connections(celery_app, dead)
    try:
        response = act(client, cycle, "start_computing")
    finally:
        celery_app.conf.update(**previous)
        _reset_connections(celery_app, "")
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "A service is unavailable" in page and "nothing was queued" in page
    cycle.refresh_from_db()
    assert cycle.state == "open"
    assert not AuditEvent.objects.filter(action="cycle.compute_requested").exists()

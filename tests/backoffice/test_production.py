"""Production's process plumbing: probes, metrics, queue routing, JSON logs (issue 17)."""

import json
import logging
import re
from pathlib import Path

import pytest

from backoffice.celery import app as celery_app
from backoffice.health import MigrationsApplied
from backoffice.logs import REDACTED, JsonFormatter
from monetization.middleware import request_id_var
from monetization.models import Provider, WebhookEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_liveness_touches_nothing_and_readiness_checks_each_dependency(client):
    live = client.get("/healthz/live")
    assert live.status_code == 200 and live.json() == {"status": "ok"}
    ready = client.get("/healthz/ready")
    assert ready.status_code == 200, ready.content
    assert ready.json() == {
        "status": "ok",
        "checks": {"Database": "ok", "Cache": "ok", "Broker": "ok", "MigrationsApplied": "ok"},
    }


def test_readiness_is_503_naming_what_is_missing(client, monkeypatch):
    # A migration of this code not applied yet (a pod of a new release before its migrate Job ran).
    monkeypatch.setattr(MigrationsApplied, "_applied", False)
    monkeypatch.setattr(
        "django.db.migrations.executor.MigrationExecutor.migration_plan", lambda self, targets: [("m", False)]
    )
    ready = client.get("/healthz/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "unavailable" and "1 migrations not applied" in body["checks"]["MigrationsApplied"]
    assert body["checks"]["Database"] == "ok"
    assert client.get("/healthz/live").status_code == 200  # a live process is not restarted for it


def test_readiness_fails_when_the_broker_is_unreachable(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    ready = client.get("/healthz/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["Broker"].startswith("Unavailable: broker unreachable")


def test_metrics_show_requests_and_the_webhook_inbox(client):
    WebhookEvent.objects.create(
        provider=Provider.STRIPE,
        event_id="evt_m1",
        event_type="invoice.paid",
        occurred_at="2026-01-01T00:00Z",
        payload={},
    )
    client.get("/healthz/live")
    text = client.get("/metrics").content.decode()
    assert (
        'django_http_responses_total_by_status_view_method_total{method="GET",status="200",view="health-live"}' in text
    )
    assert "django_http_requests_latency_seconds_by_view_method_bucket" in text
    assert 'backoffice_webhook_events{provider="stripe",state="received"} 1.0' in text
    assert 'backoffice_webhook_oldest_unfinished_age_seconds{provider="stripe"}' in text


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("monetization.tasks.apply_waiting_webhook_events", "webhooks"),
        ("monetization.tasks.sweep_webhook_events", "webhooks"),
        ("subscriptions.lifecycle_sweep", "sweeps"),
        ("verified_orgs.expire_invitations", "sweeps"),
        ("creators.tasks.cycle_pay", "payouts"),
        ("creators.tasks.cycle_compute", "payouts"),
        ("subscriptions.acknowledge_play_purchases", "outbound"),
        ("creators.tasks.export_creator_totals", "exports"),
        ("some.unrouted_task", "default"),
    ],
)
def test_each_kind_of_work_has_its_queue(task, queue):
    route = celery_app.amqp.router.route({}, task)
    assert route["queue"].name == queue


def test_every_registered_task_is_routed_to_a_known_queue():
    from django.conf import settings

    celery_app.loader.import_default_modules()
    for name in [t for t in celery_app.tasks if not t.startswith("celery.")]:
        assert celery_app.amqp.router.route({}, name)["queue"].name in settings.WORK_QUEUES, name


def test_json_log_lines_carry_the_request_id_and_redact_secrets():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "charged %s", ("in_1",), None)
    record.customer = "cust-42"
    record.stripe_api_key = "sk_live_123"
    record.card_number = "4242424242424242"
    token = request_id_var.set("rid-123")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert (line["msg"], line["request_id"], line["customer"]) == ("charged in_1", "rid-123", "cust-42")
    assert line["stripe_api_key"] == line["card_number"] == REDACTED


def test_metrics_show_each_queue_depth_and_its_oldest_message_age(client, settings):
    from monetization.tasks import sweep_webhook_events
    from tests.celery_worker import BROKER_URL, broker

    with broker(celery_app, settings, BROKER_URL):  # publishing to the test broker, its queues emptied
        settings.CELERY_BROKER_URL = BROKER_URL
        sweep_webhook_events.delay()
        sweep_webhook_events.delay()
        client.get("/healthz/live")
        text = client.get("/metrics").content.decode()
        with celery_app.connection_for_write(url=BROKER_URL) as conn:
            conn.default_channel.queue_purge("webhooks")
    assert 'backoffice_queue_depth{queue="webhooks"} 2.0' in text
    assert 'backoffice_queue_depth{queue="payouts"} 0.0' in text
    (age,) = [
        line for line in text.splitlines() if line.startswith('backoffice_queue_oldest_age_seconds{queue="webhooks"}')
    ]
    assert 0 <= float(age.split()[-1]) < 60

    # Every series the Grafana dashboard plots is exported.
    dashboard = json.loads((Path(__file__).parents[2] / "deploy/grafana/backoffice.json").read_text())
    plotted = {
        name
        for p in dashboard["panels"]
        for name in re.findall(r"\b(?:django|backoffice)_\w+", p["targets"][0]["expr"])
    }
    assert plotted and all(name in text for name in plotted), plotted

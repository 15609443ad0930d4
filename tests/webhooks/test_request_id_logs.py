"""A webhook's log line, the log line of the task it queued and the audit events that task wrote share
the request's id (issue 17): one JSON line each, from the web process and from a real Celery worker."""

import io
import json
import logging

import pytest

from backoffice.logs import JsonFormatter
from monetization.models import AuditEvent, WebhookEvent
from tests.celery_worker import wait_for

from .support import STRIPE_SECRET, fixture, stripe_body, stripe_signature

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

RID = "rid-webhook-0001"


def _json_lines(text: str) -> list[dict]:
    lines = []
    for raw in text.splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue  # celery's banner
    return lines


def test_a_webhook_and_the_task_it_queued_log_one_request_id(celery_worker_factory, client, catalog, customers):
    worker = celery_worker_factory(LOG_FORMAT="json", LOG_LEVEL="INFO").start()
    web_log = io.StringIO()
    handler = logging.StreamHandler(web_log)
    handler.setFormatter(JsonFormatter())
    stored_log = logging.getLogger("monetization.services.webhooks")
    stored_log.addHandler(handler)
    previous_level = stored_log.level
    stored_log.setLevel(logging.INFO)
    try:
        created = fixture("stripe", "customer.subscription.created")
        body = stripe_body(created)
        response = client.post(
            "/api/v1/webhooks/stripe",
            data=body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=stripe_signature(body, secret=STRIPE_SECRET),
            HTTP_X_REQUEST_ID=RID,
        )
        assert response.status_code == 200 and response["X-Request-ID"] == RID
        wait_for(lambda: WebhookEvent.objects.filter(event_id=created["id"], status="applied").exists())
    finally:
        stored_log.removeHandler(handler)
        stored_log.setLevel(previous_level)

    (stored,) = [line for line in _json_lines(web_log.getvalue()) if line["msg"] == "webhook stored"]
    assert stored["request_id"] == RID and stored["event_ids"] == [created["id"]]
    applied = wait_for(
        lambda: [
            line for line in _json_lines(worker.log_path.read_text()) if line.get("msg") == "webhook events applied"
        ]
    )
    assert [line["request_id"] for line in applied] == [RID]
    # The worker's audit trail of what the event did carries it too.
    assert set(AuditEvent.objects.filter(action="subscription.create").values_list("request_id", flat=True)) == {RID}

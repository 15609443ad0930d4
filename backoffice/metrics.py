"""Prometheus metrics: django-prometheus's (requests by view and status, latency histograms, database
and cache calls) and ours, read when scraped.

Ours come from the source of truth at scrape time, so every web process reports the same figures and
nothing is lost when a process restarts: the webhook inbox's unfinished and failed events by provider
and state, and the age of the oldest unfinished one; each Celery queue's depth, and on Redis the age
of its oldest message (stamped ``sent_at`` when published, backoffice/celery.py; RabbitMQ cannot show
a message without taking it, so there only the depth). With gunicorn's several workers, set
``PROMETHEUS_MULTIPROC_DIR`` (an empty directory per start) so the request metrics of all of them
are summed.
"""

from __future__ import annotations

import json
import os
import time

import prometheus_client
from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpResponse
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily

from backoffice.celery import app as celery_app
from monetization import clock
from monetization.models import WebhookEvent


def webhook_inbox_metrics() -> list[GaugeMetricFamily]:
    """Events not applied yet (received, waiting for their subject, retrying) or failed, by provider."""
    events = GaugeMetricFamily(
        "backoffice_webhook_events", "Webhook events not applied, by provider and state", labels=["provider", "state"]
    )
    oldest = GaugeMetricFamily(
        "backoffice_webhook_oldest_unfinished_age_seconds",
        "Age of the oldest webhook event not applied yet, by provider",
        labels=["provider"],
    )
    rows = (
        WebhookEvent.objects.filter(status__in=WebhookEvent.APPLICABLE)
        .values("provider", "status")
        .annotate(n=Count("id"), first=Min("received_at"))
    )
    now = clock.now()
    first_by_provider: dict[str, float] = {}
    for row in rows:
        events.add_metric([row["provider"], row["status"]], row["n"])
        if row["status"] in WebhookEvent.UNFINISHED:
            age = (now - row["first"]).total_seconds()
            first_by_provider[row["provider"]] = max(age, first_by_provider.get(row["provider"], 0.0))
    for provider, age in first_by_provider.items():
        oldest.add_metric([provider], age)
    return [events, oldest]


def queue_metrics() -> list[GaugeMetricFamily]:
    depth = GaugeMetricFamily("backoffice_queue_depth", "Messages waiting in each Celery queue", labels=["queue"])
    age = GaugeMetricFamily(
        "backoffice_queue_oldest_age_seconds", "Age of the oldest message in each queue (Redis)", labels=["queue"]
    )
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return [depth, age]
    now = time.time()
    with celery_app.connection_for_read(url=settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        redis = channel.client if settings.CELERY_BROKER_URL.startswith("redis") else None
        for name in settings.WORK_QUEUES:
            # Redis: the queue is a list (absent when empty); RabbitMQ: a passive declare counts it.
            count = redis.llen(name) if redis is not None else channel.queue_declare(queue=name, passive=True)[1]
            depth.add_metric([name], count)
            if redis is not None and count:
                oldest = redis.lindex(name, -1)  # kombu pushes on the left and takes from the right
                sent_at = _sent_at(oldest)
                if sent_at is not None:
                    age.add_metric([name], max(0.0, now - sent_at))
    return [depth, age]


def _sent_at(raw) -> float | None:
    try:
        return float(json.loads(raw)["headers"]["sent_at"])
    except (TypeError, ValueError, KeyError):
        return None


class BackofficeCollector:
    def collect(self):
        yield from webhook_inbox_metrics()
        try:
            yield from queue_metrics()
        except Exception:  # the broker down: the other metrics still answer (readiness says the rest)
            yield GaugeMetricFamily("backoffice_queue_metrics_up", "The broker answered the scrape", value=0)


def metrics(request):
    """``/metrics``: django-prometheus's series (all workers' with PROMETHEUS_MULTIPROC_DIR) and ours."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = prometheus_client.REGISTRY
    ours = prometheus_client.CollectorRegistry()
    ours.register(BackofficeCollector())
    body = prometheus_client.generate_latest(registry) + prometheus_client.generate_latest(ours)
    return HttpResponse(body, content_type=prometheus_client.CONTENT_TYPE_LATEST)

"""Liveness apart from readiness (django-health-check), for supervisors and Kubernetes probes.

``/healthz/live``: the process answers; nothing else is touched, so a database or broker outage
never gets a healthy process restarted (restarting would not bring the database back).
``/healthz/ready``: this process can do its work: the database and the cache answer, the broker
takes connections, and every migration is applied (a pod of a new release waits for its migrate
Job). 200 when all pass, else 503 with each check's result (no secret in them: names, not URLs).
``/healthz`` stays what it was (the database answers) for the tools already calling it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from health_check.base import HealthCheck
from health_check.checks import Cache, Database
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from backoffice.celery import app as celery_app


@dataclasses.dataclass
class Broker(HealthCheck):
    """The Celery broker takes a connection (RabbitMQ or Redis); tasks inline (the demo) need none."""

    def run(self) -> None:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            return
        try:
            with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                client = getattr(conn.default_channel, "client", None)
                if client is not None:  # Redis connects lazily: ask it something
                    client.ping()
        except Exception as exc:  # kombu raises the transport's own errors
            raise ServiceUnavailable(f"broker unreachable ({type(exc).__name__})") from exc


@dataclasses.dataclass
class MigrationsApplied(HealthCheck):
    """Every migration of the code this process runs is applied; once true it stays true (cached)."""

    _applied: ClassVar[bool] = False

    def run(self) -> None:
        if MigrationsApplied._applied:
            return
        try:
            executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except Exception as exc:
            raise ServiceUnavailable(f"migrations unknown ({type(exc).__name__})") from exc
        finally:
            connections.close_all()  # this runs in a thread of the check's executor: leave no connection
        if plan:
            raise ServiceUnavailable(f"{len(plan)} migrations not applied")
        MigrationsApplied._applied = True


READINESS_CHECKS = (Database, Cache, Broker, MigrationsApplied)


class ReadinessView(HealthCheckView):
    checks = READINESS_CHECKS

    def render_to_response_json(self, status):
        # 503 (not the library's 500): unready is a state of the dependencies, not an error of ours.
        return JsonResponse(
            {
                "status": "ok" if status == 200 else "unavailable",
                "checks": {type(r.check).__name__: "ok" if not r.error else str(r.error) for r in self.results},
            },
            status=200 if status == 200 else 503,
        )

    async def get(self, request, *args, **kwargs):
        request.GET = request.GET.copy()
        request.GET["format"] = "json"  # one machine-readable answer whatever the Accept header
        return await super().get(request, *args, **kwargs)


@never_cache
def live(request):
    return JsonResponse({"status": "ok"})


ready = ReadinessView.as_view()

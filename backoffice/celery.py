import gc
import os
import time

from celery import Celery
from celery.signals import before_task_publish, task_prerun, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings")

app = Celery("backoffice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# JSON log lines, and the request id carried from a request into the tasks it queues (signals).
from backoffice import logs  # noqa: E402, F401


@task_prerun.connect
def _close_old_database_connections(**kwargs) -> None:
    """What Django does at the start of every request: drop a connection past CONN_MAX_AGE or broken by an
    error, and health-check the kept one on first use. Celery keeps connections across tasks
    (CELERY_DB_REUSE_MAX), so it is done per task here."""
    task = kwargs.get("task")
    if task is not None and task.request.is_eager:
        return  # an eager task runs inside its caller's request, maybe inside its transaction
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
@worker_process_init.connect
def _freeze_startup_objects(**kwargs) -> None:
    """Leave what the worker loaded at start (Django, the apps, their modules: most of its heap) out of the
    garbage collector's full passes. Each full pass walked all of it, about 100 ms every thousand or so
    webhook events applied (a fifth of the worker's CPU an event, measured in process); it now walks what
    the tasks themselves allocated. Those objects live as long as the process anyway. Sent in the process
    that runs the tasks: the solo pool's worker (ready), each prefork child (process init)."""
    gc.collect()
    gc.freeze()


@before_task_publish.connect
def _stamp_sent_at(headers=None, **kwargs) -> None:
    """When the message was published, for the queue age metric (backoffice/metrics.py)."""
    if headers is not None:
        headers.setdefault("sent_at", time.time())

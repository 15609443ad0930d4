"""The Celery worker leaves what it loaded at start out of the garbage collector's full passes."""

import gc

from celery.signals import worker_process_init, worker_ready

from backoffice.celery import _freeze_startup_objects


def test_the_worker_freezes_its_startup_objects_where_tasks_run():
    assert _freeze_startup_objects in [receiver() for _key, receiver in worker_ready.receivers]
    assert _freeze_startup_objects in [receiver() for _key, receiver in worker_process_init.receivers]
    try:
        _freeze_startup_objects()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()

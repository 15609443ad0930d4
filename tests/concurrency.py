"""Running the same work in real threads at once, each on its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection


def run_at_once(work: Callable[..., Any], calls: Iterable[tuple], *, timeout: float = 120) -> list[BaseException]:
    """Call ``work(*args)`` for each ``args`` in ``calls``, each in its own thread, released together by a
    barrier so the calls overlap. Returns what they raised (an empty list when none did). Each thread closes
    its database connection: Django opens one per thread and the test database can't be dropped while one
    stays open."""
    calls = list(calls)
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(args: tuple) -> None:
        try:
            barrier.wait(timeout)
            work(*args)
        except BaseException as exc:  # collected, the caller asserts on them
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(args,)) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return errors

"""The one clock of the back office.

Every piece of code that needs "now" calls :func:`now`. Tests move time with
:func:`frozen` (month ends, leap days, DST changes) without patching
``datetime`` or ``django.utils.timezone`` behind the code's back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.utils import timezone

_state = threading.local()


def now() -> datetime:
    fixed = getattr(_state, "fixed", None)
    return fixed if fixed is not None else timezone.now()


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Pin ``now()`` to ``at`` (an aware datetime) for the current thread."""
    if timezone.is_naive(at):
        raise ValueError("clock.frozen needs an aware datetime")
    previous = getattr(_state, "fixed", None)
    _state.fixed = at
    try:
        yield
    finally:
        _state.fixed = previous


def advance(delta: timedelta) -> None:
    """Move a frozen clock forward (only meaningful inside ``frozen``)."""
    fixed = getattr(_state, "fixed", None)
    if fixed is None:
        raise RuntimeError("clock.advance needs a frozen clock")
    _state.fixed = fixed + delta

"""Named extension points: what a lower layer offers and an app above it plugs into.

The money core knows no product app, and ``subscriptions`` knows neither organizations
nor creators; they reach up through registries instead. An app fills them from its
``AppConfig.ready()``: event appliers per provider, refund hooks, payment hooks, state
hooks, entitlement sources, support console panels. Entries are named, so registering
the same name again (a reload, a test) replaces the entry instead of adding a second one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, in the order they were first registered."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise LookupError(f"No {self.what} registered for {name!r}.") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {list(self._entries)})"

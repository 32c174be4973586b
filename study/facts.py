"""Facts of one database that cannot change once stored, kept in memory between calls.

A rater's every case runs the same checks on the same assignment two or three times (its first
showing, its submission); each sub-plan of a DuckDB statement costs about a millisecond whatever
the table's size, so re-reading what cannot change is most of a check's cost. ``Facts`` keeps
such facts: a small, bounded, least-recently-used map, one per database connection
(``Store.facts``: every ``Store`` of one file in a process shares it, an in-memory database has
its own, and it dies with the connection), so one database's facts are never served for
another's ids, which repeat across databases.

Only immutable facts go in (the callers say why each one cannot change); whatever can change
(roles, a study's status, an assignment's state) is read afresh on every call. A fact is kept
only when it was read outside a transaction (``Store.remember``): a transaction that rolls back
would otherwise leave facts of rows that never existed, under ids that new rows then take.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

LIMIT = 20_000
"""Facts kept per database: each is a few hundred bytes (an assignment's ids, labels and
normalised author ids), so a full map is a few MB; a queue of 100 raters touches far fewer."""


class Facts:
    """A bounded, thread-safe LRU map of immutable facts, ``key -> value``; keys are tuples
    that start with the fact's kind (e.g. ``("assignment", 17)``)."""

    __slots__ = ("_items", "_limit", "_lock")

    def __init__(self, limit: int = LIMIT) -> None:
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        """The fact stored under ``key``, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` (not None) under ``key``, dropping the least recently used beyond the
        limit."""
        if value is None:
            raise ValueError("a fact is never None (None means: not known)")
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

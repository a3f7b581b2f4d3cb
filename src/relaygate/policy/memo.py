"""Decisions derived from one policy snapshot, made on first use and dropped with the snapshot.

What a key may call does not change between snapshots: the principal a key stands for, and the
route and deployments a model name resolves to for it, follow from the snapshot and the catalog
(built once at start-up). Working them out again on every request costs little in a warm loop
but several times more at a steady 100 requests/s, where each request meets cold caches
(docs/performance.md). So each snapshot carries a memo for each (decision 0022). A reload
builds a new snapshot with empty memos: a revoked key or a changed allowlist takes effect
exactly when it did before.

Nothing time-dependent is kept (a key's expiry is still checked on every request), no raw
credential is a memo key, and failures are not kept (an unknown model stays a 404 each time).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

MEMO_ENTRIES = 4096  # keys x model names in use at once; past this the memo starts again


class SnapshotMemo(Generic[K, V]):
    """A bounded memo: `get(key, make)` returns the value made for `key` (made now if new)."""

    __slots__ = ("_limit", "_values")

    def __init__(self, limit: int = MEMO_ENTRIES) -> None:
        self._limit = limit
        self._values: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The value for `key`; `make()` builds it the first time (an exception is not kept)."""
        try:
            return self._values[key]
        except KeyError:
            pass
        value = make()
        if len(self._values) >= self._limit:
            # Many callers and model names at once: forget them all rather than track use;
            # what is still in use is made again on its next request.
            self._values.clear()
        self._values[key] = value
        return value

    def __len__(self) -> int:
        return len(self._values)

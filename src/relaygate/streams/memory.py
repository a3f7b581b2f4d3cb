"""Resumable streams kept in this process (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from relaygate.streams.store import Frame


@dataclass(slots=True)
class _Stream:
    tenant_id: str
    ttl_s: float
    expires: float
    frames: deque[bytes]  # the latest events; the last one's id is `last`
    last: int = 0
    done: bool = False
    cancelled: bool = False
    # Replaced on every change: a watcher waits on the event it saw, so none misses a wake-up.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self, now: float) -> None:
        self.expires = now + self.ttl_s
        self.changed.set()
        self.changed = asyncio.Event()


class MemoryStreamStore:
    """A dictionary of streams, swept of expired ones as new ones open; `max_events` bounds
    one stream's memory: a longer generation keeps going and its watchers keep up, but only its
    latest `max_events` events can be replayed."""

    def __init__(self, max_events: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_events = max_events
        self.clock = clock
        self._streams: dict[str, _Stream] = {}
        self._next_sweep = 0.0

    def _live(self, stream_id: str) -> _Stream | None:
        stream = self._streams.get(stream_id)
        if stream is not None and stream.expires <= self.clock():
            del self._streams[stream_id]
            return None
        return stream

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + 5.0
        for stream_id in [k for k, s in self._streams.items() if s.expires <= now]:
            del self._streams[stream_id]

    async def open(self, stream_id: str, tenant_id: str, ttl_s: float) -> None:
        now = self.clock()
        self._sweep(now)
        self._streams[stream_id] = _Stream(
            tenant_id, ttl_s, now + ttl_s, deque(maxlen=self.max_events)
        )

    async def append(self, stream_id: str, frame: bytes) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        stream.frames.append(frame)
        stream.last += 1
        stream.touch(self.clock())
        return not stream.cancelled

    async def close(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.done = True
            stream.touch(self.clock())

    async def owner(self, stream_id: str) -> str | None:
        stream = self._live(stream_id)
        return stream.tenant_id if stream is not None else None

    async def read(self, stream_id: str, after: int, wait_s: float) -> tuple[list[Frame], bool]:
        stream = self._live(stream_id)
        if stream is None:
            return [], True
        if stream.last <= after and not stream.done:
            waiting = stream.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting.wait(), wait_s)
        oldest = stream.last - len(stream.frames) + 1  # the id of frames[0]
        start = max(after + 1, oldest)
        kept = itertools.islice(stream.frames, start - oldest, None)
        return list(enumerate(kept, start=start)), stream.done

    async def cancel(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.cancelled = True

    def held_here(self) -> int:
        now = self.clock()
        return sum(1 for stream in self._streams.values() if stream.expires > now)

    async def aclose(self) -> None:
        self._streams.clear()

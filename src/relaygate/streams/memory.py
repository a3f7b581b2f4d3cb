"""Resumable streams kept in this process (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from relaygate.streams.store import Frame


@dataclass(slots=True)
class _Stream:
    tenant_id: str
    ttl_s: float
    expires: float
    frames: list[bytes] = field(default_factory=list)
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
    one stream's memory (a longer generation keeps going, its oldest events are not resumable)."""

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
        self._streams[stream_id] = _Stream(tenant_id, ttl_s, now + ttl_s)

    async def append(self, stream_id: str, frame: bytes) -> bool:
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        if len(stream.frames) < self.max_events:
            stream.frames.append(frame)
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
        if len(stream.frames) <= after and not stream.done:
            waiting = stream.changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting.wait(), wait_s)
        frames = [(n, f) for n, f in enumerate(stream.frames[after:], start=after + 1)]
        return frames, stream.done

    async def cancel(self, stream_id: str) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.cancelled = True

    async def aclose(self) -> None:
        self._streams.clear()

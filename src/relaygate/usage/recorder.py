"""The usage ledger writer: records leave the request path and are flushed in batches.

`record()` only appends to a list. A background task writes batches every `interval` seconds;
`aclose()` (on graceful shutdown) writes whatever is left, so a graceful stop loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.tables import UsageRecord

log = logging.getLogger("relaygate.usage")


@dataclass(slots=True)
class UsageEvent:
    """One finished data-plane request."""

    request_id: str
    tenant_id: str
    environment: str
    key_id: str
    endpoint: str
    route: str
    status: int
    outcome: str
    provider: str | None = None
    model: str | None = None
    end_user: str | None = None
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


_COLUMNS = tuple(f.name for f in fields(UsageEvent))


def _row(event: UsageEvent) -> dict[str, object]:
    # A flat copy: dataclasses.asdict deep-copies every value and showed up in profiles.
    return {name: getattr(event, name) for name in _COLUMNS}


class UsageRecorder:
    """Buffers usage events and writes them in batches."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], interval: float = 0.5) -> None:
        self._sessions = sessions
        self._interval = interval
        self._pending: list[UsageEvent] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        """Start the background flusher."""
        self._task = asyncio.create_task(self._run(), name="usage-flusher")

    def record(self, event: UsageEvent) -> None:
        """Queue one event (never blocks, never does I/O)."""
        self._pending.append(event)
        if len(self._pending) >= 1000:
            self._wake.set()

    async def flush(self) -> int:
        """Write every queued event now; returns how many were written."""
        batch, self._pending = self._pending, []
        if not batch:
            return 0
        try:
            async with self._sessions.begin() as session:
                await session.execute(insert(UsageRecord), [_row(e) for e in batch])
        except Exception:
            # Keep the events for the next attempt rather than lose them.
            self._pending[:0] = batch
            raise
        return len(batch)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("usage flush failed; will retry")

    async def aclose(self) -> None:
        """Stop the flusher and write what is left."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.flush()

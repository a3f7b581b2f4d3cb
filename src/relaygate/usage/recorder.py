"""The usage ledger writer: records leave the request path and are flushed in batches.

`record()` appends the event to an in-memory batch and, when the recorder has a journal
directory, as one line to the current journal segment (one `os.write`, no fsync). A background
task writes the batch every `interval` seconds: it rotates to a fresh segment, inserts the old
batch (idempotently on `event_id`) and then deletes the old segment. `aclose()` (on graceful
shutdown) writes whatever is left, so a graceful stop loses nothing; after a kill, the next start
replays the segments left behind (`relaygate.usage.journal.replay_journal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.usage.journal import Journal, Row, Segment, encode_row, insert_rows

log = logging.getLogger("relaygate.usage")

_WAKE_AT = 1000


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
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)


_COLUMNS = tuple(f.name for f in fields(UsageEvent))


def _row(event: UsageEvent) -> Row:
    # A flat copy: dataclasses.asdict deep-copies every value and showed up in profiles.
    return {name: getattr(event, name) for name in _COLUMNS}


@dataclass(slots=True)
class _Batch:
    """Rows not yet in the database and the journal segments that hold them."""

    rows: list[Row] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)


class UsageRecorder:
    """Buffers usage events, journals them to `journal_dir` if given, and writes them in batches.

    Without a journal directory a killed process loses the events of the current batch.
    `on_record`, if given, also sees every event as it is recorded (the access log).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        interval: float = 0.5,
        journal_dir: Path | None = None,
        on_record: Callable[[UsageEvent], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self.on_record = on_record
        self._interval = interval
        self._journal = Journal(journal_dir) if journal_dir is not None else None
        self._batch = _Batch()
        # The segment record() appends to; None until opened (or after a journal write failed).
        self._segment: Segment | None = None
        # False after the journal failed: no new segment until the next flush tries again.
        self._journal_ok = True
        # A batch the database refused; retried (before anything newer) on the next flush.
        self._failed: _Batch | None = None
        self._flushing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        """Start the background flusher (and open the first journal segment)."""
        self._open_segment()
        self._task = asyncio.create_task(self._run(), name="usage-flusher")

    def record(self, event: UsageEvent) -> None:
        """Queue one event; with a journal, also append it as one line (one `os.write`)."""
        row = _row(event)
        batch = self._batch
        batch.rows.append(row)
        if self._journal is not None:
            segment = self._segment or self._open_segment()
            if segment is not None:
                try:
                    segment.append(encode_row(row))
                except OSError as exc:
                    self._journal_failed("write to", exc)
        if len(batch.rows) >= _WAKE_AT:
            self._wake.set()
        if self.on_record is not None:
            self.on_record(event)

    def _open_segment(self) -> Segment | None:
        if self._journal is None or not self._journal_ok:
            return None
        try:
            segment = self._journal.open_segment()
        except OSError as exc:
            self._journal_failed("create a segment in", exc)
            return None
        self._segment = segment
        self._batch.segments.append(segment)
        return segment

    def _journal_failed(self, action: str, exc: OSError) -> None:
        # The events stay in memory and still reach the database; only kill-safety is lost.
        log.error(
            "could not %s the usage journal (%s); events are kept in memory only until the "
            "next flush",
            action,
            exc.strerror or type(exc).__name__,
        )
        self._segment = None
        self._journal_ok = False

    async def flush(self) -> int:
        """Write every queued event now; returns how many were written.

        On a database error the events (and their journal segments) are kept for the next try
        and the error propagates. While a failed batch waits, new events join the current one,
        so an outage never holds more than two segments open.
        """
        async with self._flushing:
            written = 0
            if self._failed is not None:
                await self._insert(self._failed)
                written, self._failed = len(self._failed.rows), None
            if not self._batch.rows:
                return written
            batch, self._batch = self._batch, _Batch()
            self._segment = None
            self._journal_ok = True
            self._open_segment()
            try:
                await self._insert(batch)
            except BaseException:
                self._failed = batch
                raise
            return written + len(batch.rows)

    async def _insert(self, batch: _Batch) -> None:
        await insert_rows(self._sessions, batch.rows)
        for segment in batch.segments:
            segment.discard()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("usage flush failed; will retry")
                # Not again at once, even if the full buffer keeps waking us.
                await asyncio.sleep(self._interval)

    async def aclose(self) -> None:
        """Stop the flusher and write what is left; the journal is then removed.

        If the final write fails, the unwritten segments stay on disk for the next start.
        """
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
        finally:
            self._journal = None
            for batch in (self._failed, self._batch):
                if batch is None:
                    continue
                for segment in batch.segments:
                    if batch.rows:
                        segment.close()
                    else:
                        segment.discard()
            self._segment = None

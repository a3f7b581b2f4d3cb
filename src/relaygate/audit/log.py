"""Append to the audit log; aggregate high-volume events; sign checkpoints.

Admin and vault operations are appended as they happen (inside the admin request, which may wait
on the database). High-volume events (a provider credential used by a request, admin keys
authenticating) are counted in memory and appended as one entry per subject and interval that
lists the request ids, so every use stays attributable without one row per request.

Appends from several replicas are serialised by the sequence number, which is the primary key: a
replica that loses the race re-reads the head and tries again, so the chain never forks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.audit.chain import GENESIS, Entry, chain_hash, detail_text
from relaygate.audit.checkpoint import Checkpoint, export, make_checkpoint
from relaygate.audit.signer import CheckpointSigner
from relaygate.store.tables import AuditCheckpoint, AuditEntry

log = logging.getLogger("relaygate.audit")

MAX_IDS_PER_ENTRY = 500
_APPEND_ATTEMPTS = 20


_Key = tuple[str, str, str | None, str, str]  # actor, action, tenant, target, subject


@dataclass(slots=True)
class _Tally:
    count: int = 0
    request_ids: list[str] = field(default_factory=list)
    first_at: str = ""
    last_at: str = ""


async def _head(session: AsyncSession) -> tuple[int, str] | None:
    """The newest entry's sequence number and hash, if any."""
    row = (
        await session.execute(
            select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


class AuditLog:
    """The deployment's audit log."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        signer: CheckpointSigner,
        export_path: Path | None,
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._export_path = export_path
        self._lock = asyncio.Lock()
        self._tallies: dict[_Key, _Tally] = defaultdict(_Tally)
        self._full: list[tuple[_Key, _Tally]] = []

    async def append(
        self,
        actor: str,
        action: str,
        target: str,
        *,
        tenant_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> int:
        """Append one entry now; returns its sequence number."""
        text = detail_text(detail or {})
        async with self._lock:
            for _ in range(_APPEND_ATTEMPTS):
                try:
                    return await self._try_append(actor, action, target, tenant_id, text)
                except IntegrityError:  # another replica took this sequence number
                    await asyncio.sleep(0.005)
        raise RuntimeError("audit append kept losing the race for the next sequence number")

    async def _try_append(
        self, actor: str, action: str, target: str, tenant_id: str | None, text: str
    ) -> int:
        async with self._sessions() as session, session.begin():
            head = await _head(session)
            seq, prev = (head[0] + 1, head[1]) if head is not None else (1, GENESIS)
            entry = Entry(seq, datetime.now(UTC), actor, action, tenant_id, target, text)
            session.add(
                AuditEntry(
                    seq=seq,
                    created_at=entry.created_at,
                    actor=actor,
                    action=action,
                    tenant_id=tenant_id,
                    target=target,
                    detail=text,
                    prev_hash=prev,
                    hash=chain_hash(prev, entry),
                )
            )
        return seq

    def note(
        self,
        actor: str,
        action: str,
        target: str,
        *,
        tenant_id: str | None = None,
        request_id: str = "",
        subject: str = "",
    ) -> None:
        """Count a high-volume event (no I/O); `flush` appends the tallies."""
        key = (actor, action, tenant_id, target, subject)
        tally = self._tallies[key]
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        if not tally.count:
            tally.first_at = now
        tally.last_at = now
        tally.count += 1
        if request_id:
            tally.request_ids.append(request_id)
        if len(tally.request_ids) >= MAX_IDS_PER_ENTRY:
            # A full tally becomes its own entry, so no request id is ever dropped.
            self._full.append((key, self._tallies.pop(key)))

    async def flush(self) -> int:
        """Append one entry per tally; returns how many were written. Tallies that could not
        be written stay pending for the next flush."""
        pending = self._full + list(self._tallies.items())
        self._full, self._tallies = [], defaultdict(_Tally)
        written = 0
        try:
            for (actor, action, tenant_id, target, subject), tally in pending:
                detail: dict[str, Any] = {
                    "count": tally.count,
                    "first_at": tally.first_at,
                    "last_at": tally.last_at,
                    "request_ids": tally.request_ids,
                }
                if subject:
                    detail["subject"] = subject
                await self.append(actor, action, target, tenant_id=tenant_id, detail=detail)
                written += 1
        finally:
            self._full = pending[written:] + self._full
        return written

    async def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Sign the current head, store it and export it; None if nothing new since the last."""
        async with self._sessions() as session, session.begin():
            head = await _head(session)
            if head is None:
                return None
            last = await session.scalar(select(func.max(AuditCheckpoint.size)))
            if last is not None and last >= head[0] and not force:
                return None
            checkpoint = make_checkpoint(self._signer, head[0], head[1], datetime.now(UTC))
            if last is None or last < head[0]:
                session.add(
                    AuditCheckpoint(
                        size=checkpoint.size,
                        head_hash=checkpoint.head_hash,
                        created_at=datetime.fromisoformat(checkpoint.created_at),
                        key_id=checkpoint.key_id,
                        signature=checkpoint.signature,
                    )
                )
        if self._export_path is not None:
            await asyncio.to_thread(export, self._export_path, checkpoint)
        return checkpoint

    async def run(self, flush_s: float, checkpoint_s: float) -> None:
        """Flush tallies every `flush_s` and checkpoint every `checkpoint_s` (background task)."""
        loop = asyncio.get_running_loop()
        next_checkpoint = loop.time() + checkpoint_s
        while True:
            await asyncio.sleep(flush_s)
            try:
                await self.flush()
                if loop.time() >= next_checkpoint:
                    next_checkpoint = loop.time() + checkpoint_s
                    await self.checkpoint()
            except Exception as exc:
                log.warning("audit flush failed (%s); will retry", type(exc).__name__)

    async def aclose(self) -> None:
        """Write what is pending and a final checkpoint."""
        try:
            await self.flush()
            await self.checkpoint()
        except Exception as exc:
            log.warning("audit flush at shutdown failed (%s)", type(exc).__name__)

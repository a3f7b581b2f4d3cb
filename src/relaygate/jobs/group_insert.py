"""Job rows created by concurrent requests share one transaction.

The rows waiting are written by one `INSERT ... ON CONFLICT DO NOTHING ... RETURNING id` for all
of them: a row whose tenant already used its Idempotency-Key is skipped, and is missing from what
comes back. Requests that arrive while a transaction is being written wait for the next one, so a
burst of N creations costs one statement and one commit instead of N of each (on SQLite: one
write to the log and one lock hand-over). One request at a time is written at once.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.tables import Job

# Built once per dialect: SQLAlchemy compiles each once and a creation only binds parameters.
_JOBS = cast(Table, Job.__table__)
_INSERT_UNLESS_DUPLICATE = {
    "postgresql": postgresql.insert(_JOBS).on_conflict_do_nothing().returning(_JOBS.c.id),
    "sqlite": sqlite.insert(_JOBS).on_conflict_do_nothing().returning(_JOBS.c.id),
}
_COLUMNS = tuple((a.key, a.columns[0].name) for a in Job.__mapper__.column_attrs)
MAX_ROWS = 256  # per transaction


class GroupInsert:
    """Inserts job rows; `insert` answers whether the row was new (False: a duplicate key)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._pending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def insert(self, job: Job) -> bool:
        """Write `job` (with whatever else is waiting); True if inserted, False if a duplicate."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append(({column: getattr(job, key) for key, column in _COLUMNS}, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="job-group-insert")
        # Shielded: a caller that goes away does not undo a row already on its way to disk.
        return await asyncio.shield(future)

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_ROWS], self._pending[MAX_ROWS:]
                try:
                    inserted = await self._transaction([row for row, _ in batch])
                except Exception as exc:  # every caller of this batch gets the error
                    for _, future in batch:
                        future.set_exception(exc)
                except BaseException:  # cancelled (shutdown): so are the callers' waits
                    for _, future in (*batch, *self._pending):
                        future.cancel()
                    self._pending = []
                    raise
                else:
                    for (_, future), new in zip(batch, inserted, strict=True):
                        future.set_result(new)
        finally:
            self._writer = None

    async def _transaction(self, rows: list[dict[str, Any]]) -> list[bool]:
        async with self._sessions() as session, session.begin():
            statement = _INSERT_UNLESS_DUPLICATE[session.get_bind().dialect.name]
            # RETURNING names the rows written; a row whose key was already taken is not among them.
            written = set((await session.execute(statement, rows)).scalars())
        return [row["id"] in written for row in rows]

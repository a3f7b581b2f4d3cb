"""One process at a time migrates the schema and stores the bootstrap keys.

Deployment tools start replicas together, so several processes may find the same empty database
at the same instant; left alone, each runs `alembic upgrade` and inserts the configured keys, and
all but one fail on a unique constraint. Every process that migrates or bootstraps takes this
lock first:

- PostgreSQL: a session-level advisory lock, held on a connection of its own (so the migration,
  which Alembic runs on another connection, is not inside its transaction). It is released when
  the block ends, or by the server when the process dies.
- SQLite: an exclusive `flock` on `<database>.lock`, beside the database file (several workers of
  one server, or a `relaygate worker`, on the same host). The kernel drops it when the process dies.

Whoever comes second waits, then finds the work done (an upgrade at head is a no-op, and the
bootstrap treats "already stored" as done).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

log = logging.getLogger("relaygate.store")

# Any constant works: advisory locks are scoped to the database, so two databases of one server
# never contend. This one spells "RGSTART" in ASCII.
ADVISORY_LOCK_ID = 0x52475354415254


@asynccontextmanager
async def startup_lock(url: str) -> AsyncIterator[None]:
    """Hold the database's startup lock for the duration of the block (waiting for it first)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        async with _advisory_lock(url):
            yield
    elif backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        async with _file_lock(Path(parsed.database + ".lock")):
            yield
    else:
        yield


@asynccontextmanager
async def _advisory_lock(url: str) -> AsyncIterator[None]:
    engine = create_async_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            taken = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID}
            )
            if not taken:
                log.info("another process is migrating the database; waiting for it")
                await connection.execute(
                    text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID}
                )
            try:
                yield
            finally:
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID}
                )
    finally:
        await engine.dispose()


@asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as handle:
        if not await asyncio.to_thread(_lock, handle.fileno(), blocking=False):
            log.info("another process is migrating the database; waiting for it")
            await asyncio.to_thread(_lock, handle.fileno(), blocking=True)
        try:
            yield
        finally:
            _unlock(handle.fileno())


def _lock(fd: int, *, blocking: bool) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)

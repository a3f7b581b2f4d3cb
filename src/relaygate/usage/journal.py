"""The usage journal: finished requests on local disk until their batch is in the database.

Every usage event is appended as one JSON line to the current segment file of its process with a
single unbuffered `os.write` (no fsync). The page cache outlives the process, so a killed gateway
loses no finished request; a machine crash or power loss can lose the lines written since the
last flush (at most one batch interval), like SQLite's own `synchronous=NORMAL`.

A process holds an exclusive `flock` on each segment it writes. Segments are created under a
temporary name, locked, then renamed, so a `*.jsonl` file is either owned by a live process (and
locked) or left behind by a dead one. `replay_journal` inserts the events of the unlocked ones
and deletes them. Inserts are idempotent on `event_id`, so replaying a segment whose batch
already reached the database adds nothing.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Insert, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.tables import UsageRecord

log = logging.getLogger("relaygate.usage")

JOURNAL_DIRNAME = "usage-journal"
SEGMENT_SUFFIX = ".jsonl"
_PENDING_SUFFIX = ".jsonl.new"
# A segment still under its temporary name this long after creation belongs to a dead process.
_STALE_PENDING_S = 60.0

Row = dict[str, Any]

_TABLE: Table = UsageRecord.__table__  # type: ignore[assignment]
_COLUMNS = frozenset(c.name for c in _TABLE.columns if not c.primary_key)
_REQUIRED = frozenset(
    {"event_id"}
    | {c.name for c in _TABLE.columns if not c.nullable and not c.primary_key and c.default is None}
)


def journal_directory(data_dir: Path) -> Path:
    """Where the usage journal of a gateway with this data directory lives."""
    return data_dir / JOURNAL_DIRNAME


def encode_row(row: Mapping[str, object]) -> bytes:
    """One journal line (JSON, newline-terminated; datetimes as ISO 8601)."""
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)


class Segment:
    """One journal file owned by this process: exclusively locked, append-only."""

    __slots__ = ("_fd", "path")

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    @classmethod
    def create(cls, directory: Path, name: str) -> Segment:
        """Create, lock and publish `<directory>/<name>.jsonl` (it must not exist yet)."""
        directory.mkdir(parents=True, exist_ok=True)
        pending = directory / (name + _PENDING_SUFFIX)
        fd = os.open(pending, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path = directory / (name + SEGMENT_SUFFIX)
            os.rename(pending, path)
        except BaseException:
            os.close(fd)
            pending.unlink(missing_ok=True)
            raise
        return cls(path, fd)

    def append(self, line: bytes) -> None:
        """Write one line with one system call; raises OSError if it did not all reach the file."""
        written = os.write(self._fd, line)
        if written != len(line):
            raise OSError(errno.ENOSPC, "short write to the usage journal")

    def discard(self) -> None:
        """Delete the file (its events are in the database), then release the lock."""
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.close()

    def close(self) -> None:
        """Release the lock and keep the file for a later replay."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class Journal:
    """Names and creates the segments of one usage recorder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # pid for humans; the random part keeps names unique when pids repeat (containers).
        self._tag = secrets.token_hex(4)
        self._sequence = 0

    def open_segment(self) -> Segment:
        """A new, locked, empty segment."""
        self._sequence += 1
        name = f"{os.getpid()}-{self._tag}-{self._sequence:08d}"
        return Segment.create(self.directory, name)


async def insert_rows(sessions: async_sessionmaker[AsyncSession], rows: Sequence[Row]) -> int:
    """Insert usage rows, skipping any whose `event_id` is already stored; returns rows added."""
    if not rows:
        return 0
    async with sessions.begin() as session:
        statement = _idempotent_insert(session.get_bind().dialect.name)
        result = await session.execute(statement.returning(_TABLE.c.event_id), rows)
        return len(result.all())


def _idempotent_insert(dialect: str) -> Insert:
    if dialect == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["event_id"])
    if dialect == "sqlite":
        return sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["event_id"])
    # Any other database: a duplicate fails loudly on the unique constraint instead.
    return insert(_TABLE)


def _decode(line: bytes) -> Row | None:
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not data.keys() >= _REQUIRED:
        return None
    row: Row = {k: v for k, v in data.items() if k in _COLUMNS}
    if not isinstance(row["event_id"], str) or not isinstance(row["created_at"], str):
        return None
    try:
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    except ValueError:
        return None
    return row


def read_segment(data: bytes, name: str) -> list[Row]:
    """The events in a segment's bytes; a torn or damaged line is skipped with a warning."""
    rows: list[Row] = []
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row = _decode(line)
        if row is not None:
            rows.append(row)
        elif number == len(lines):
            log.warning("usage journal %s: ignoring a torn last line (%d bytes)", name, len(line))
        else:
            log.warning("usage journal %s: ignoring damaged line %d", name, number)
    return rows


@dataclass(slots=True)
class _Orphan:
    """A segment no live process holds, locked by us, with its events read."""

    path: Path
    fd: int
    rows: list[Row]

    def remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self.fd)


def _candidates(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    _remove_stale_pending(directory)
    return sorted(directory.glob("*" + SEGMENT_SUFFIX))


def _claim(path: Path) -> _Orphan | None:
    """Lock and read `path` unless a live process holds it or it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None  # its owner flushed and deleted it meanwhile
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:
            raise FileNotFoundError(path)  # deleted between our open and our lock
        with open(fd, "rb", closefd=False) as file:
            return _Orphan(path, fd, read_segment(file.read(), path.name))
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)  # a live process writes it, or it is gone
        return None
    except BaseException:
        os.close(fd)
        raise


def _remove_stale_pending(directory: Path) -> None:
    # A process killed between creating a segment and publishing it leaves an empty file.
    now = time.time()
    for path in directory.glob("*" + _PENDING_SUFFIX):
        try:
            if now - path.stat().st_mtime > _STALE_PENDING_S:
                path.unlink(missing_ok=True)
        except FileNotFoundError:
            continue


async def replay_journal(directory: Path, sessions: async_sessionmaker[AsyncSession]) -> int:
    """Insert the events of segments left by dead processes, then delete those segments.

    Segments locked by a live process are skipped, so this is safe while other workers run.
    Idempotent: an event already in the database is not inserted again. Returns how many events
    were added to the database. A database error propagates and leaves the segment for later.
    """
    added = 0
    for path in await asyncio.to_thread(_candidates, directory):
        orphan = await asyncio.to_thread(_claim, path)
        if orphan is None:
            continue
        try:
            inserted = await insert_rows(sessions, orphan.rows)
        except BaseException:
            os.close(orphan.fd)
            raise
        await asyncio.to_thread(orphan.remove)
        added += inserted
        if orphan.rows:
            log.info(
                "usage journal %s: replayed %d events, %d of them new",
                path.name,
                len(orphan.rows),
                inserted,
            )
    return added

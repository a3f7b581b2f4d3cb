"""Usage records survive a killed process: the journal, its replay, and graceful shutdown.

Every test runs on SQLite and on a real PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.tables import UsageRecord
from relaygate.usage.journal import replay_journal
from relaygate.usage.recorder import UsageRecorder
from tests.usage.dying import record_and_die, usage_event

Sessions = async_sessionmaker[AsyncSession]


async def stored(sessions: Sessions) -> Counter[str]:
    """How many rows each request id has in the usage ledger."""
    async with sessions() as session:
        ids = (await session.scalars(select(UsageRecord.request_id))).all()
    return Counter(ids)


def segments(journal: Path) -> list[Path]:
    return sorted(journal.iterdir()) if journal.exists() else []


async def test_events_of_a_killed_process_are_replayed_once(
    database_url: str, sessions: Sessions, journal: Path
) -> None:
    ids = [f"req_killed_{n}" for n in range(5)]
    record_and_die(database_url, journal, "recorded", ids)
    assert await stored(sessions) == Counter()

    assert await replay_journal(journal, sessions) == 5
    assert await stored(sessions) == Counter(dict.fromkeys(ids, 1))
    assert segments(journal) == []

    assert await replay_journal(journal, sessions) == 0
    assert await stored(sessions) == Counter(dict.fromkeys(ids, 1))


async def test_a_kill_between_insert_and_segment_deletion_adds_no_duplicates(
    database_url: str, sessions: Sessions, journal: Path
) -> None:
    ids = [f"req_inserted_{n}" for n in range(4)]
    record_and_die(database_url, journal, "inserted", ids)
    assert await stored(sessions) == Counter(dict.fromkeys(ids, 1))
    assert len(segments(journal)) >= 1  # the flushed segment was left behind

    assert await replay_journal(journal, sessions) == 0
    assert await stored(sessions) == Counter(dict.fromkeys(ids, 1))
    assert segments(journal) == []


async def test_a_torn_last_line_is_ignored_and_earlier_lines_are_kept(
    database_url: str, sessions: Sessions, journal: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = [f"req_torn_{n}" for n in range(3)]
    record_and_die(database_url, journal, "recorded", ids)
    (segment,) = [p for p in segments(journal) if p.stat().st_size > 0]
    with segment.open("ab") as file:
        file.write(b'{"event_id":"0123456789abcdef0123456789abcdef","request_id":"req_tor')

    with caplog.at_level(logging.WARNING, logger="relaygate.usage"):
        assert await replay_journal(journal, sessions) == 3
    assert await stored(sessions) == Counter(dict.fromkeys(ids, 1))
    assert "torn last line" in caplog.text
    assert segments(journal) == []


async def test_a_segment_of_a_live_recorder_is_not_replayed(
    sessions: Sessions, journal: Path
) -> None:
    recorder = UsageRecorder(sessions, journal_dir=journal)
    recorder.record(usage_event("req_live"))
    assert len(segments(journal)) == 1

    assert await replay_journal(journal, sessions) == 0
    assert await stored(sessions) == Counter()
    assert len(segments(journal)) == 1

    await recorder.aclose()
    assert await stored(sessions) == Counter({"req_live": 1})


async def test_graceful_close_writes_everything_and_leaves_no_segment(
    sessions: Sessions, journal: Path
) -> None:
    recorder = UsageRecorder(sessions, journal_dir=journal)
    recorder.start()
    ids = [f"req_graceful_{n}" for n in range(50)]
    for request_id in ids[:25]:
        recorder.record(usage_event(request_id))
    assert await recorder.flush() == 25
    for request_id in ids[25:]:
        recorder.record(usage_event(request_id))

    await recorder.aclose()
    assert await stored(sessions) == Counter(dict.fromkeys(ids, 1))
    assert segments(journal) == []


async def test_events_survive_a_failing_database_and_are_written_once_it_works(
    database_url: str, journal: Path
) -> None:
    engine = create_engine(database_url)  # not migrated yet: every insert fails
    sessions = sessionmaker(engine)
    try:
        recorder = UsageRecorder(sessions, journal_dir=journal)
        recorder.record(usage_event("req_retry_1"))
        with pytest.raises(Exception, match="usage_records"):
            await recorder.flush()
        recorder.record(usage_event("req_retry_2"))
        with pytest.raises(Exception, match="usage_records"):
            await recorder.flush()
        # Both events are still journaled, so even a kill now would not lose them.
        assert b"req_retry_1" in b"".join(p.read_bytes() for p in segments(journal))
        assert b"req_retry_2" in b"".join(p.read_bytes() for p in segments(journal))

        await migrate_async(database_url)
        assert await recorder.flush() == 2
        assert await stored(sessions) == Counter({"req_retry_1": 1, "req_retry_2": 1})
        await recorder.aclose()
        assert segments(journal) == []
    finally:
        await engine.dispose()


async def test_without_a_journal_directory_the_recorder_still_writes(
    sessions: Sessions,
) -> None:
    recorder = UsageRecorder(sessions)
    recorder.record(usage_event("req_plain"))
    await recorder.aclose()
    assert await stored(sessions) == Counter({"req_plain": 1})

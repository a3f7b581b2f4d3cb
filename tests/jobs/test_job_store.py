"""The job rows' state machine on SQLite and PostgreSQL: racing claims have one winner, only the
lease holder finishes, lost leases go back to the queue, the sweeper's queueing rules, purge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from relaygate.jobs.group_insert import GroupInsert
from relaygate.jobs.model import JobRequest
from relaygate.jobs.store import JobStore, Outcome, Owner, now_utc, queued_job
from relaygate.store.database import create_engine, migrate_async, sessionmaker
from relaygate.store.tables import Job

OWNER = Owner("acme", "production", "key1", "bearer", None)
OK = Outcome("succeeded", 200, b"{}", None, None, 0.0, "r", 1.0)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    await migrate_async(database_url)
    engine = create_engine(database_url)
    yield sessionmaker(engine)
    await engine.dispose()


def _request(text: str = "hi") -> JobRequest:
    return JobRequest.parse({"url": "/v1/embeddings", "body": {"model": "m", "input": text}})


async def test_racing_claims_have_exactly_one_winner(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = JobStore(sessions)
    job, _ = await store.create(OWNER, _request(), None, 3, None)
    claims = await asyncio.gather(*(store.claim(job.id, f"w{i}", 30) for i in range(8)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1 and winners[0].attempts == 1


async def test_only_the_lease_holder_finishes_and_only_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = JobStore(sessions)
    job, _ = await store.create(OWNER, _request(), None, 3, None)
    claimed = await store.claim(job.id, "w1", 30)
    assert claimed is not None
    assert await store.finish(claimed, "w2", OK) is False
    assert await store.finish(claimed, "w1", OK) is True
    assert await store.finish(claimed, "w1", OK) is False
    final = await store.get(job.id, "acme")
    assert final is not None and final.status == "succeeded"
    assert await store.get(job.id, "other-tenant") is None


async def test_a_lapsed_lease_returns_the_job_and_refuses_the_late_result(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = JobStore(sessions)
    job, _ = await store.create(OWNER, _request(), None, 3, None)
    first = await store.claim(job.id, "dead-worker", 30)
    assert first is not None
    async with sessions() as session, session.begin():
        await session.execute(
            update(Job).where(Job.id == job.id).values(lease_expires_at=now_utc() - timedelta(1))
        )
    assert await store.expire_leases() == 1
    assert job.id in await store.due(stale_s=300)
    second = await store.claim(job.id, "live-worker", 30)
    assert second is not None and second.attempts == 2
    assert await store.finish(first, "dead-worker", OK) is False
    assert await store.finish(second, "live-worker", OK) is True


async def test_the_sweeper_does_not_queue_a_waiting_backlog_twice(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = JobStore(sessions)
    job, _ = await store.create(OWNER, _request(), None, 3, None)  # handed to the queue now
    assert await store.due(stale_s=300) == []
    assert await store.due(stale_s=0) == [job.id]  # at startup of an in-memory queue


async def test_purge_removes_only_old_finished_jobs(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store = JobStore(sessions)
    done, _ = await store.create(OWNER, _request("a"), None, 3, None)
    waiting, _ = await store.create(OWNER, _request("b"), None, 3, None)
    claimed = await store.claim(done.id, "w", 30)
    assert claimed is not None and await store.finish(claimed, "w", OK)
    assert await store.purge(now_utc() - timedelta(days=1)) == 0
    assert await store.purge(now_utc() + timedelta(seconds=1)) == 1
    assert await store.get(done.id) is None and await store.get(waiting.id) is not None


async def test_concurrent_creations_share_transactions_and_keys_stay_unique(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    store, other_store = JobStore(sessions), JobStore(sessions)  # two gateways, one database
    keys = [f"key-{i % 10}" for i in range(40)]  # every key four times, in one burst
    made = await asyncio.gather(
        *(
            (store if i % 2 else other_store).create(OWNER, _request(), key, 3, None)
            for i, key in enumerate(keys)
        ),
        *(store.create(OWNER, _request(), None, 3, None) for _ in range(5)),
    )
    by_key: dict[str, set[str]] = {}
    for key, (job, _) in zip(keys, made, strict=False):
        by_key.setdefault(key, set()).add(job.id)
    assert all(len(ids) == 1 for ids in by_key.values()) and len(by_key) == 10
    assert sum(created for _, created in made[:40]) == 10
    assert all(created for _, created in made[40:])  # no key: always a new job
    async with sessions() as session:
        rows = list(await session.scalars(select(Job.id)))
    assert len(rows) == 15
    assert {job.id for job, _ in made} == set(rows)
    # The same key with another body is refused, also when it arrives in the same burst.
    clash = await asyncio.gather(
        store.create(OWNER, _request("a"), "clash", 3, None),
        store.create(OWNER, _request("b"), "clash", 3, None),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Exception) and "Idempotency-Key" in str(r) for r in clash) == 1


async def test_a_shutdown_mid_insert_does_not_leave_requests_waiting(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    inserts = GroupInsert(sessions)
    writing = asyncio.Event()

    async def stuck(rows: list[dict[str, object]]) -> list[bool]:
        writing.set()
        await asyncio.sleep(3600)
        return []

    def job() -> Job:
        return queued_job(
            OWNER, url="/v1/embeddings", body={}, max_attempts=1, moment=now_utc(), kicked_at=None
        )

    inserts._transaction = stuck  # type: ignore[method-assign]
    request = asyncio.create_task(inserts.insert(job()))
    await writing.wait()
    later = asyncio.create_task(inserts.insert(job()))  # waits for the next transaction
    await asyncio.sleep(0)
    assert inserts._writer is not None
    inserts._writer.cancel()  # what the event loop does to background tasks at shutdown
    for waiting in (request, later):
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 5)

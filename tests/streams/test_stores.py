"""Both stores of resumable streams behave alike: ordered ids, waiting readers wake on new
events and on the end, the stop flag, expiry, ownership. Redis is the machine's (or a
throwaway server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from relaygate.streams.memory import MemoryStreamStore
from relaygate.streams.redis_store import RedisStreamStore
from relaygate.streams.store import StreamStore
from tests.support.services import delete_prefix, unique_prefix


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StreamStore]:
    if request.param == "memory":
        yield MemoryStreamStore(max_events=100)
        return
    url = request.getfixturevalue("redis_url")
    client: Any = redis.Redis.from_url(url, socket_timeout=10)
    prefix = unique_prefix()
    try:
        yield RedisStreamStore(client, prefix, max_events=100)
    finally:
        cleanup: Any = redis.Redis.from_url(url)
        await delete_prefix(cleanup, prefix)
        await cleanup.aclose()
        await client.aclose()


async def test_events_come_back_in_order_after_any_id(store: StreamStore) -> None:
    await store.open("s1", "acme", 60)
    for text in (b"data: a\n\n", b"data: b\n\n", b"data: c\n\n"):
        assert await store.append("s1", text) is True
    frames, ended = await store.read("s1", 0, 0.05)
    assert frames == [(1, b"data: a\n\n"), (2, b"data: b\n\n"), (3, b"data: c\n\n")]
    assert ended is False
    frames, _ = await store.read("s1", 2, 0.05)
    assert frames == [(3, b"data: c\n\n")]
    await store.close("s1")
    frames, ended = await store.read("s1", 3, 0.05)
    assert frames == [] and ended is True
    assert await store.owner("s1") == "acme"
    assert await store.owner("nope") is None


async def test_a_waiting_reader_wakes_for_the_next_event_and_for_the_end(
    store: StreamStore,
) -> None:
    await store.open("s2", "acme", 60)
    reader = asyncio.create_task(store.read("s2", 0, 5))
    await asyncio.sleep(0.05)
    await store.append("s2", b"data: x\n\n")
    frames, ended = await asyncio.wait_for(reader, 2)
    assert frames == [(1, b"data: x\n\n")] and ended is False
    waiting = asyncio.create_task(store.read("s2", 1, 5))
    await asyncio.sleep(0.05)
    await store.close("s2")
    frames, ended = await asyncio.wait_for(waiting, 2)
    assert frames == [] and ended is True


async def test_cancel_is_seen_by_the_producer(store: StreamStore) -> None:
    await store.open("s3", "acme", 60)
    assert await store.append("s3", b"data: 1\n\n") is True
    await store.cancel("s3")
    assert await store.append("s3", b"data: 2\n\n") is False


async def test_streams_expire_after_their_ttl(store: StreamStore) -> None:
    await store.open("s4", "acme", 1)
    await store.append("s4", b"data: 1\n\n")
    await store.close("s4")
    assert await store.owner("s4") == "acme"
    await asyncio.sleep(1.3)
    assert await store.owner("s4") is None
    assert await store.read("s4", 0, 0.05) == ([], True)


async def test_a_long_stream_keeps_its_latest_events_and_watchers_keep_up(
    store: StreamStore,
) -> None:
    await store.open("s5", "acme", 60)  # the fixture's stores keep 100 events
    for n in range(1, 251):
        assert await store.append("s5", b"data: %d\n\n" % n) is True
    frames, ended = await store.read("s5", 240, 0.05)  # a watcher just behind the producer
    assert frames == [(n, b"data: %d\n\n" % n) for n in range(241, 251)] and ended is False
    replay, _ = await store.read("s5", 0, 0.05)  # a replay starts at the oldest event kept
    ids = [n for n, _ in replay]
    assert ids == list(range(ids[0], 251)) and 100 <= len(ids) < 250
    assert all(frame == b"data: %d\n\n" % n for n, frame in replay)


async def test_streams_held_in_this_process_are_counted_until_they_expire() -> None:
    now = [100.0]
    memory = MemoryStreamStore(max_events=10, clock=lambda: now[0])
    assert memory.held_here() == 0
    await memory.open("a", "acme", 60)
    await memory.open("b", "acme", 10)
    await memory.close("b")  # ended, but still resumable until it expires
    assert memory.held_here() == 2
    now[0] += 11
    assert memory.held_here() == 1  # a worker holding "a" is not replaced
    now[0] += 50
    assert memory.held_here() == 0


async def test_redis_streams_are_never_held_by_the_process(store: StreamStore) -> None:
    await store.open("held", "acme", 60)
    expected = 1 if isinstance(store, MemoryStreamStore) else 0
    assert store.held_here() == expected

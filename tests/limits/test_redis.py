"""The Redis limiter across replicas: one limit in total, leases that expire, cancellation."""

from __future__ import annotations

import asyncio
import math
import time

import redis.asyncio as redis

from relaygate.limits import Limit, RedisLimiter, Subject
from tests.support.services import delete_prefix, unique_prefix


async def test_three_replicas_admit_a_60_rpm_limit_60_times_in_total(
    redis_url: str, prefix: str
) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(3)]
    replicas = [RedisLimiter(client, prefix) for client in clients]
    tenant = Subject("tenant", "acme", Limit(rpm=60))
    try:
        started = time.monotonic()
        decisions = await asyncio.gather(
            *(replicas[i % 3].acquire([tenant], 0) for i in range(180))
        )
        elapsed = time.monotonic() - started
    finally:
        for client in clients:
            await client.aclose()
    admitted = sum(d.allowed for d in decisions)
    # The bucket refills one request per second: a run longer than a second may admit one more
    # per whole second elapsed (elapsed spans every script run, so this bound is safe).
    assert 60 <= admitted <= 60 + math.floor(elapsed)
    refused = [d for d in decisions if not d.allowed]
    assert all(int(d.headers["retry-after"]) >= 1 for d in refused)
    assert all(d.headers["x-ratelimit-remaining-requests"] == "0" for d in refused)


async def test_three_replicas_share_a_token_budget_and_concurrency(
    redis_url: str, prefix: str
) -> None:
    clients = [redis.Redis.from_url(redis_url) for _ in range(3)]
    replicas = [RedisLimiter(client, prefix) for client in clients]
    key = Subject("key", "k1", Limit(concurrency=7))
    user = Subject("user", "acme/u1", Limit(tpm=60_000))
    try:
        decisions = await asyncio.gather(
            *(replicas[i % 3].acquire([key, user], 5000) for i in range(30))
        )
        admitted = [d for d in decisions if d.allowed]
        # 60000 tokens would fit 12 requests, but only 7 may run at once.
        assert len(admitted) == 7
        for i, decision in enumerate(admitted):  # each settled by another replica
            assert decision.lease is not None
            await replicas[(i + 1) % 3].settle(decision.lease, 1000)
        # 7 x 1000 tokens were used: 53000 (plus refill) remain, and every slot is free.
        after = await asyncio.gather(
            *(replicas[i % 3].acquire([key, user], 7000) for i in range(7))
        )
        assert sum(d.allowed for d in after) == 7
    finally:
        for client in clients:
            await client.aclose()


async def test_an_unsettled_lease_expires_on_redis_time(
    redis_client: redis.Redis, prefix: str
) -> None:
    limiter = RedisLimiter(redis_client, prefix, lease_ttl_s=1.0)
    key = Subject("key", "k1", Limit(concurrency=2, tpm=1000))
    crashed = await limiter.acquire([key], 100)  # a replica that dies before settling
    assert crashed.allowed
    await asyncio.sleep(0.6)
    # A later lease keeps the set alive past the first lease's expiry...
    assert (await limiter.acquire([key], 100)).allowed
    assert not (await limiter.acquire([key], 100)).allowed
    await asyncio.sleep(0.6)
    # ...yet the first lease no longer counts.
    assert (await limiter.acquire([key], 100)).allowed
    assert crashed.lease is not None
    await limiter.settle(crashed.lease, 0)  # too late: frees nobody else's slot
    assert not (await limiter.acquire([key], 100)).allowed


async def test_keys_follow_the_layout_and_expire(redis_client: redis.Redis, prefix: str) -> None:
    limiter = RedisLimiter(redis_client, prefix)
    user = Subject("user", "acme/wp:42", Limit(rpm=60, tpm=600, concurrency=2))
    decision = await limiter.acquire([user], 300)
    assert decision.lease is not None
    base = f"{prefix}rl:user:acme/wp:42:"
    assert set(await redis_client.hgetall(base + "requests")) == {b"level", b"ts"}
    # A bucket expires when it would be full again anyway: 1 request at 1/s, 300 tokens at 10/s.
    assert 0 < await redis_client.pttl(base + "requests") <= 1001
    assert 29_000 < await redis_client.pttl(base + "tokens") <= 30_001
    assert await redis_client.zcard(base + "concurrency") == 1
    assert 0 < await redis_client.pttl(base + "concurrency") <= 3_600_000
    await limiter.settle(decision.lease, 0)
    # The refund filled the tokens bucket, so it is gone; the slot is gone too.
    assert not await redis_client.exists(base + "tokens")
    assert not await redis_client.exists(base + "concurrency")
    assert [k async for k in redis_client.scan_iter(match=f"{prefix}rl:lease:*")] == []


async def test_a_settle_interrupted_by_cancellation_still_completes(
    redis_client: redis.Redis, prefix: str
) -> None:
    limiter = RedisLimiter(redis_client, prefix)
    key = Subject("key", "k1", Limit(concurrency=1))
    entered = asyncio.Event()

    async def request() -> None:
        decision = await limiter.acquire([key], 0)
        assert decision.lease is not None
        try:
            entered.set()
            await asyncio.Event().wait()  # the response is streaming...
        finally:
            await limiter.settle(decision.lease, 0)  # ...when the client goes away

    task = asyncio.create_task(request())
    await entered.wait()
    task.cancel()
    await asyncio.sleep(0)  # the task is now inside settle, waiting for Redis
    task.cancel()  # and is cancelled again there (e.g. a server shutting down)
    await asyncio.gather(task, return_exceptions=True)
    await limiter.aclose()  # waits for settles still running
    assert (await limiter.acquire([key], 0)).allowed


async def test_acquires_cancelled_in_flight_give_back_what_they_took(
    redis_client: redis.Redis, prefix: str
) -> None:
    limiter = RedisLimiter(redis_client, prefix)
    key = Subject("key", "k1", Limit(concurrency=1, tpm=1000))
    # Cancel at every point of the round trip: before sending, while Redis runs the script,
    # after the reply; whatever was taken must come back.
    for steps in range(12):
        task = asyncio.create_task(limiter.acquire([key], 800))
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if not task.cancelled() and (lease := task.result().lease) is not None:
            await limiter.settle(lease, 0)  # it finished before the cancel: ours to settle
        await limiter.aclose()  # waits for give-backs running in the background
    decision = await limiter.acquire([key], 1000)
    assert decision.allowed


async def test_separate_prefixes_do_not_share_limits(redis_client: redis.Redis) -> None:
    a_prefix, b_prefix = unique_prefix(), unique_prefix()
    try:
        key = Subject("key", "k1", Limit(rpm=1))
        a, b = RedisLimiter(redis_client, a_prefix), RedisLimiter(redis_client, b_prefix)
        assert (await a.acquire([key], 0)).allowed
        assert (await b.acquire([key], 0)).allowed
        assert not (await a.acquire([key], 0)).allowed
    finally:
        await delete_prefix(redis_client, a_prefix)
        await delete_prefix(redis_client, b_prefix)

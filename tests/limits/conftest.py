"""One behavioural suite for both limiters: `harness` runs each test on memory and on real Redis.

Time travel: the memory limiter gets an injected clock; for Redis, `advance` moves the stored
bucket timestamps and lease expiries back, which is what the passing of time looks like to Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as redis

from relaygate.limits import Limiter, MemoryLimiter, RedisLimiter
from tests.support.services import delete_prefix, unique_prefix

LEASE_TTL_S = 300.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A limiter, how to move time forward for it, and whether real time can blur its numbers."""

    limiter: Limiter
    advance: Callable[[float], Awaitable[None]]
    exact: bool


async def shift_redis_time(client: redis.Redis, prefix: str, seconds: float) -> None:
    """Make every bucket and lease under `prefix` look `seconds` older."""
    async for key in client.scan_iter(match=f"{prefix}rl:*"):
        kind = await client.type(key)
        if kind == b"hash":
            await client.hincrbyfloat(key, "ts", -seconds)
        elif kind == b"zset":
            for member in await client.zrange(key, 0, -1):
                await client.zincrby(key, -seconds, member)


@pytest.fixture(params=["memory", "redis"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    """The same behaviour, in-process and on the real Redis."""
    if request.param == "memory":
        clock = Clock()

        async def advance_clock(seconds: float) -> None:
            clock.now += seconds

        limiter = MemoryLimiter(clock=clock, lease_ttl_s=LEASE_TTL_S)
        yield Harness(limiter, advance_clock, exact=True)
        await limiter.aclose()
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"))
    key_prefix = unique_prefix()

    async def advance_redis(seconds: float) -> None:
        await shift_redis_time(client, key_prefix, seconds)

    shared = RedisLimiter(client, key_prefix, lease_ttl_s=LEASE_TTL_S)
    try:
        yield Harness(shared, advance_redis, exact=False)
        await shared.aclose()
    finally:
        await delete_prefix(client, key_prefix)
        await client.aclose()

"""When Redis is unreachable: per-replica limits, admit, or refuse; and no timeout per request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from relaygate.limits import (
    Decision,
    FallbackLimiter,
    Lease,
    Limit,
    Limiter,
    LimiterUnavailable,
    MemoryLimiter,
    RedisLimiter,
    Subject,
    build_limiter,
)
from tests.limits.conftest import Clock
from tests.support.servers import free_port

PASSWORD = "s3cret-pw"
KEY = Subject("key", "k1", Limit(rpm=2, concurrency=5))


class Counting:
    """A limiter that counts the calls reaching it, and can be switched off like a dead Redis."""

    def __init__(self, inner: Limiter) -> None:
        self.inner = inner
        self.acquires = 0
        self.settles = 0
        self.down = False

    async def acquire(self, subjects: Sequence[Subject], tokens: int) -> Decision:
        self.acquires += 1
        if self.down:
            raise RedisConnectionError("Error 111 connecting")
        return await self.inner.acquire(subjects, tokens)

    async def settle(self, lease: Lease, actual_tokens: int) -> None:
        self.settles += 1
        if self.down:
            raise RedisConnectionError("Error 111 connecting")
        await self.inner.settle(lease, actual_tokens)

    async def aclose(self) -> None:
        await self.inner.aclose()


class Hanging:
    """A primary that never answers (a black-holed Redis with generous client retries)."""

    async def acquire(self, subjects: Sequence[Subject], tokens: int) -> Decision:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def settle(self, lease: Lease, actual_tokens: int) -> None:
        await asyncio.Event().wait()

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def unreachable() -> AsyncIterator[redis.Redis]:
    """A client for a port where nothing listens; its URL carries a password."""
    client = redis.Redis.from_url(
        f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0",
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )
    yield client
    await client.aclose()


def _fallback(primary: Limiter, mode: str, clock: Clock) -> FallbackLimiter:
    return FallbackLimiter(primary, MemoryLimiter(clock=clock), mode, clock=clock)  # type: ignore[arg-type]


async def test_local_mode_enforces_the_limits_in_this_replica(unreachable: redis.Redis) -> None:
    limiter = _fallback(RedisLimiter(unreachable, "rg:"), "local", Clock())
    assert limiter.healthy
    first, second, third = [await limiter.acquire([KEY], 0) for _ in range(3)]
    assert first.allowed and second.allowed
    assert first.lease is not None and first.lease.backend == "memory"
    assert not third.allowed
    assert third.denied == (KEY, "requests")
    assert third.headers["retry-after"] == "30"
    assert not limiter.healthy


async def test_open_mode_admits_without_limits(unreachable: redis.Redis) -> None:
    limiter = _fallback(RedisLimiter(unreachable, "rg:"), "open", Clock())
    decisions = [await limiter.acquire([KEY], 0) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    lease = decisions[0].lease
    assert lease is not None and lease.backend == "none"
    assert decisions[0].headers == {}
    await limiter.settle(lease, 10)  # nothing to give back, and no error


async def test_closed_mode_refuses_with_limiter_unavailable(unreachable: redis.Redis) -> None:
    limiter = _fallback(RedisLimiter(unreachable, "rg:"), "closed", Clock())
    for _ in range(3):
        with pytest.raises(LimiterUnavailable) as raised:
            await limiter.acquire([KEY], 0)
        assert PASSWORD not in str(raised.value)


async def test_an_outage_costs_one_attempt_per_cool_down_and_one_warning(
    unreachable: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    primary = Counting(RedisLimiter(unreachable, "rg:"))
    limiter = _fallback(primary, "local", clock)
    caplog.set_level(logging.WARNING, logger="relaygate.limits")
    user = Subject("user", "acme/u1", Limit(rpm=1000))
    for _ in range(10):
        await limiter.acquire([user], 0)
    await asyncio.gather(*(limiter.acquire([user], 0) for _ in range(20)))
    assert primary.acquires == 1
    clock.now += 2.1  # the cool-down is over: one request probes, the others do not wait
    await asyncio.gather(*(limiter.acquire([user], 0) for _ in range(20)))
    assert primary.acquires == 2
    clock.now += 1.0  # a new cool-down started with the failed probe
    await limiter.acquire([user], 0)
    assert primary.acquires == 2
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "unreachable" in warnings[0].getMessage()
    assert PASSWORD not in caplog.text
    assert str(unreachable.connection_pool.connection_kwargs["port"]) not in caplog.text


async def test_a_primary_that_never_answers_counts_as_unreachable() -> None:
    limiter = FallbackLimiter(Hanging(), MemoryLimiter(), "local", timeout_s=0.05)
    decision = await asyncio.wait_for(limiter.acquire([KEY], 0), 10)
    assert decision.allowed
    assert decision.lease is not None and decision.lease.backend == "memory"
    assert not limiter.healthy


async def test_settle_goes_to_the_backend_holding_the_lease(unreachable: redis.Redis) -> None:
    clock = Clock()
    primary = Counting(RedisLimiter(unreachable, "rg:"))
    limiter = _fallback(primary, "local", clock)
    key = Subject("key", "k1", Limit(concurrency=1))
    held = await limiter.acquire([key], 0)
    assert held.lease is not None and held.lease.backend == "memory"
    assert not (await limiter.acquire([key], 0)).allowed
    await limiter.settle(held.lease, 0)
    assert primary.settles == 0
    assert (await limiter.acquire([key], 0)).allowed


async def test_after_recovery_limits_are_shared_again_and_missed_settles_are_retried(
    redis_client: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    primary = Counting(RedisLimiter(redis_client, prefix))
    limiter = _fallback(primary, "local", clock)
    caplog.set_level(logging.WARNING, logger="relaygate.limits")
    key = Subject("key", "k1", Limit(concurrency=1))
    held = await limiter.acquire([key], 0)
    assert held.lease is not None and held.lease.backend == "redis"
    primary.down = True
    during = await limiter.acquire([Subject("key", "k2", Limit(rpm=5))], 0)
    assert during.lease is not None and during.lease.backend == "memory"
    await limiter.settle(held.lease, 0)  # Redis is down: kept for later
    assert not limiter.healthy
    primary.down = False
    clock.now += 2.1
    probe = await limiter.acquire([Subject("key", "k3", Limit(rpm=5))], 0)
    assert probe.lease is not None and probe.lease.backend == "redis"
    assert limiter.healthy
    for _ in range(100):  # the missed settle is retried in the background
        again = await limiter.acquire([key], 0)
        if again.allowed:
            break
        await asyncio.sleep(0.01)
    assert again.allowed
    assert again.lease is not None and again.lease.backend == "redis"
    messages = [r.getMessage() for r in caplog.records]
    assert any("unreachable" in m for m in messages)
    assert any("reachable again" in m for m in messages)
    await limiter.aclose()


async def test_build_limiter_picks_memory_alone_or_redis_with_a_fallback(
    redis_client: redis.Redis, prefix: str
) -> None:
    embedded = build_limiter(None, prefix, "local")
    assert isinstance(embedded, MemoryLimiter)
    shared = build_limiter(redis_client, prefix, "closed")
    assert isinstance(shared, FallbackLimiter)
    decision = await shared.acquire([KEY], 0)
    assert decision.lease is not None and decision.lease.backend == "redis"
    await shared.settle(decision.lease, 0)
    await shared.aclose()

"""Replay guards: in memory, in a real Redis shared by replicas, and the fallback between them."""

from __future__ import annotations

import hashlib
import logging

import pytest
import redis.asyncio as redis
from redis import exceptions as redis_errors

from relaygate.auth.replay import FallbackReplayGuard, MemoryReplayGuard, RedisReplayGuard
from tests.support.servers import free_port
from tests.support.services import unique_prefix

# --- memory ------------------------------------------------------------------------------------


async def test_memory_guard_accepts_a_nonce_once_per_namespace() -> None:
    guard = MemoryReplayGuard()
    assert await guard.first_use("hmac", "n1", 10)
    assert not await guard.first_use("hmac", "n1", 10)
    assert await guard.first_use("jwt:iss1", "n1", 10)
    assert await guard.first_use("hmac", "n2", 10)


async def test_memory_guard_forgets_a_nonce_after_its_ttl() -> None:
    clock = [0.0]
    guard = MemoryReplayGuard(clock=lambda: clock[0])
    assert await guard.first_use("ns", "n1", 10)
    clock[0] = 9.9
    assert not await guard.first_use("ns", "n1", 10)
    clock[0] = 10.0
    assert await guard.first_use("ns", "n1", 10)


async def test_memory_guard_drops_expired_nonces() -> None:
    clock = [0.0]
    guard = MemoryReplayGuard(clock=lambda: clock[0])
    for n in range(100):
        await guard.first_use("ns", str(n), 5)
    clock[0] = 6.0
    await guard.first_use("ns", "late", 5)
    assert len(guard) == 1


async def test_memory_guard_is_bounded_and_forgets_the_nonce_closest_to_expiry() -> None:
    guard = MemoryReplayGuard(clock=lambda: 0.0, max_entries=3)
    assert await guard.first_use("ns", "long", 100)
    assert await guard.first_use("ns", "short", 1)
    assert await guard.first_use("ns", "mid", 50)
    assert await guard.first_use("ns", "new", 100)
    assert len(guard) == 3
    assert await guard.first_use("ns", "short", 1)  # the one that was forgotten
    assert not await guard.first_use("ns", "long", 100)


# --- Redis -------------------------------------------------------------------------------------


async def test_redis_guard_is_shared_between_replicas(redis_url: str) -> None:
    prefix = unique_prefix()
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        one, two = (RedisReplayGuard(c, prefix) for c in clients)
        assert await one.first_use("hmac", "sig", 5)
        assert not await two.first_use("hmac", "sig", 5)
        assert not await one.first_use("hmac", "sig", 5)
        assert await two.first_use("jwt:iss1", "sig", 5)
    finally:
        for client in clients:
            await client.aclose()


async def test_redis_guard_stores_a_hashed_nonce_with_its_ttl(redis_url: str) -> None:
    prefix = unique_prefix()
    client = redis.Redis.from_url(redis_url)
    try:
        nonce = "Kid123abc:secret-looking-signature"
        assert await RedisReplayGuard(client, prefix).first_use("hmac", nonce, 600)
        keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}*")]
        assert keys == [f"{prefix}replay:hmac:{hashlib.sha256(nonce.encode()).hexdigest()}"]
        assert 0 < await client.pttl(keys[0]) <= 600_000
        await client.delete(*keys)
    finally:
        await client.aclose()


async def test_redis_guard_forgets_a_nonce_after_its_ttl(redis_url: str) -> None:
    import asyncio

    client = redis.Redis.from_url(redis_url)
    try:
        guard = RedisReplayGuard(client, unique_prefix())
        assert await guard.first_use("hmac", "short", 0.05)
        for _ in range(100):  # the key expires on Redis's clock; wait for that, not a fixed time
            await asyncio.sleep(0.05)
            if await guard.first_use("hmac", "short", 0.05):
                break
        else:
            pytest.fail("the nonce was still remembered 5 s after a 50 ms TTL")
    finally:
        await client.aclose()


# --- fallback ----------------------------------------------------------------------------------


class FlakyGuard:
    """A primary that can be switched off like a Redis outage."""

    def __init__(self) -> None:
        self.down = False
        self.inner = MemoryReplayGuard()

    async def first_use(self, namespace: str, nonce: str, ttl_s: float) -> bool:
        if self.down:
            raise redis_errors.ConnectionError("Error 111 connecting to redis://:pw@10.0.0.5")
        return await self.inner.first_use(namespace, nonce, ttl_s)


async def test_unreachable_redis_falls_back_to_local_memory(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    dead = redis.Redis.from_url(url, socket_connect_timeout=0.2)
    caplog.set_level(logging.WARNING, logger="relaygate.auth")
    try:
        guard = FallbackReplayGuard(RedisReplayGuard(dead, "x:"), MemoryReplayGuard())
        assert await guard.first_use("hmac", "sig", 5)
        assert not await guard.first_use("hmac", "sig", 5)
        assert not guard.healthy
    finally:
        await dead.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "relaygate.auth"]
    assert len(warnings) == 1
    assert "hunter2" not in warnings[0] and "127.0.0.1" not in warnings[0]


async def test_fallback_skips_redis_for_the_cooldown_then_retries() -> None:
    clock = [0.0]
    primary = FlakyGuard()
    primary.down = True
    guard = FallbackReplayGuard(primary, MemoryReplayGuard(), clock=lambda: clock[0])
    await guard.first_use("ns", "a", 5)
    clock[0] = 1.9
    await guard.first_use("ns", "b", 5)
    assert guard.attempts == 1
    clock[0] = 2.1
    await guard.first_use("ns", "c", 5)
    assert guard.attempts == 2


async def test_one_warning_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    clock = [0.0]
    primary = FlakyGuard()
    guard = FallbackReplayGuard(primary, MemoryReplayGuard(), clock=lambda: clock[0])
    caplog.set_level(logging.WARNING, logger="relaygate.auth")
    primary.down = True
    for n in range(5):  # five attempts, cool-downs in between: still one outage
        clock[0] += 3
        await guard.first_use("ns", f"a{n}", 5)
    primary.down = False
    clock[0] += 3
    await guard.first_use("ns", "b", 5)
    assert guard.healthy
    primary.down = True
    clock[0] += 3
    await guard.first_use("ns", "c", 5)
    messages = [r.getMessage() for r in caplog.records if r.name == "relaygate.auth"]
    assert [m.split(" (")[0] for m in messages] == [
        "replay guard: Redis unreachable",
        "replay guard: Redis is reachable again",
        "replay guard: Redis unreachable",
    ]
    assert all("pw@" not in m and "10.0.0.5" not in m for m in messages)


async def test_a_nonce_accepted_during_an_outage_stays_refused_after_it() -> None:
    clock = [0.0]
    primary = FlakyGuard()
    guard = FallbackReplayGuard(primary, MemoryReplayGuard(), clock=lambda: clock[0])
    primary.down = True
    assert await guard.first_use("hmac", "sig", 600)
    primary.down = False
    clock[0] = 3.0
    assert not await guard.first_use("hmac", "sig", 600)
    assert guard.healthy


async def test_a_nonce_accepted_before_an_outage_stays_refused_during_it() -> None:
    primary = FlakyGuard()
    guard = FallbackReplayGuard(primary, MemoryReplayGuard())
    assert await guard.first_use("hmac", "sig", 600)
    primary.down = True
    assert not await guard.first_use("hmac", "sig", 600)
    assert not guard.healthy


async def test_fallback_uses_a_reachable_redis(redis_url: str) -> None:
    prefix = unique_prefix()
    clients = [redis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        one, two = (
            FallbackReplayGuard(RedisReplayGuard(c, prefix), MemoryReplayGuard()) for c in clients
        )
        assert await one.first_use("hmac", "sig", 5)
        assert not await two.first_use("hmac", "sig", 5)  # another replica's memory never saw it
        assert one.healthy and two.healthy
    finally:
        for client in clients:
            await client.aclose()
